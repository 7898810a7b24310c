/**
 * Type fixture for `@Cacheable()` (compiled by `tsc -p test/types` in `pnpm typecheck`, and by
 * test/types/cacheable-types.test.ts): it decorates methods typed with Express's own
 * `Request`/`Response`/`NextFunction`, with Node's types, with fewer parameters, async ones,
 * and methods that do not handle requests, which must not compile (`@ts-expect-error`).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import { Cacheable } from 'perfstack';

interface Product {
  readonly id: string;
  readonly name: string;
}

export class ProductsController {
  constructor(private readonly products: readonly Product[]) {}

  @Cacheable({ ttl: '5m', tags: ['products'] })
  list(_req: Request, res: Response): void {
    res.json(this.products);
  }

  @Cacheable({ ttl: '1m' })
  get(req: Request<{ id: string }>, res: Response<Product | { error: string }>, next: NextFunction): void {
    const product = this.products.find((p) => p.id === req.params.id);
    if (product === undefined) {
      next();
      return;
    }
    res.json(product);
  }

  @Cacheable({ ttl: '30s', staleIfError: '5m' })
  async quote(_req: Request, res: Response): Promise<void> {
    res.json(await Promise.resolve({ rate: 1 }));
  }

  @Cacheable()
  raw(_req: IncomingMessage, res: ServerResponse): void {
    res.end('ok');
  }
}

export class NotAHandler {
  // @ts-expect-error a method whose first parameter is no request cannot be cached
  @Cacheable()
  total(a: number, b: number): number {
    return a + b;
  }

  // @ts-expect-error nor one whose second parameter is no response
  @Cacheable()
  greet(_req: Request, name: string): string {
    return `hello ${name}`;
  }
}

// Mounting: the decorated method keeps its type, so Express's route accepts it as is.
const controller = new ProductsController([{ id: '1', name: 'Espresso machine' }]);
const app = express();
app.get('/products', (req, res) => controller.list(req, res));
app.get('/products/:id', (req, res, next) => controller.get(req, res, next));
app.get('/quote', (req, res) => controller.quote(req, res));

export { app };
