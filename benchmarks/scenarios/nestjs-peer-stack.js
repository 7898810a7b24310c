/**
 * The NestJS peer stack, assembled as each library's README shows, on Nest's Express adapter:
 * express-prom-bundle (metrics) → helmet → CORS (`app.enableCors()`) → Nest's JSON parser
 * with the 10 kb limit → nestjs-pino (pino-http, credential headers redacted, to a file) →
 * @nestjs/throttler's global guard (in memory, a limit the run never reaches) →
 * @nestjs/cache-manager's `CacheInterceptor` on GET /api/cached (in memory, 5 min).
 * NestJS has no breaker of its own in this list; the perfstack side runs its breaker anyway.
 */
import { CacheInterceptor, CacheModule } from '@nestjs/cache-manager';
import { UseInterceptors } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { ThrottlerGuard, ThrottlerModule } from '@nestjs/throttler';
import helmet from 'helmet';
import { LoggerModule } from 'nestjs-pino';
import pino from 'pino';
import { listen, logFile, RATE_LIMIT, RATE_WINDOW_MS } from '../lib/fixture.js';
import { nestApp } from '../lib/nest-app.js';
import { promMiddleware } from '../lib/peers.js';

const server = await nestApp({
  imports: [
    CacheModule.register({ ttl: 5 * 60_000 }),
    ThrottlerModule.forRoot([{ ttl: RATE_WINDOW_MS, limit: RATE_LIMIT }]),
    LoggerModule.forRoot({
      pinoHttp: {
        logger: pino(
          { level: 'info', redact: ['req.headers.authorization', 'req.headers.cookie'] },
          pino.destination({ dest: logFile(), sync: false }),
        ),
      },
    }),
  ],
  providers: [{ provide: APP_GUARD, useClass: ThrottlerGuard }],
  cachedRoute: [UseInterceptors(CacheInterceptor)],
  bodyLimit: true,
  setup(app) {
    app.use(promMiddleware());
    app.use(helmet());
    app.enableCors();
  },
});
listen(server);
