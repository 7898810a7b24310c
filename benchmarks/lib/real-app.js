/**
 * The middleware a real API runs around its routes, for the `*-real` scenarios: body
 * parsers, cookies, a session and an authenticated user, each with the properties its
 * well-known library adds to the request.
 *
 * - Express: `express.json()`, `express.urlencoded()`, `cookie-parser` (signed cookies),
 *   a session middleware shaped like express-session (`req.sessionStore`, `req.sessionID`,
 *   `req.session`, loaded from an in-memory store by the `sid` cookie) and an auth
 *   middleware shaped like passport (`req._passport`, `req.user`, from the session or a
 *   Bearer token).
 * - Koa: `@koa/bodyparser`, and the same session (`ctx.session`, like koa-session) and user
 *   (`ctx.state.user`).
 *
 * The session and auth middleware are written here, not installed, because what the
 * benchmark needs from them is their per-request shape (which properties they add), not
 * their stores: express-session and passport set exactly these properties.
 */
import { BODY_LIMIT } from './fixture.js';

/** The cookie the timed requests of the real scenarios send: a session with a signed-in user. */
export const SESSION_ID = 'bench-session-0001';
export const REAL_COOKIE = `sid=${SESSION_ID}; theme=dark; consent=yes`;
const COOKIE_SECRET = 'bench-cookie-secret';

/** A session store with one signed-in session. */
function sessionStore() {
  const sessions = new Map([[SESSION_ID, { userId: 42, views: 0 }]]);
  return { get: (id) => sessions.get(id) };
}

const USERS = new Map([[42, { id: 42, name: 'Bench User', roles: ['reader'] }]]);

/** A session object like express-session's: the stored data plus `id` and `cookie`. */
class Session {
  constructor(id, data) {
    this.id = id;
    this.cookie = { path: '/', httpOnly: true, maxAge: 86_400_000 };
    this.userId = data?.userId;
    this.views = data?.views ?? 0;
  }
}

/**
 * The Express middleware, in the order an app mounts them.
 * @returns {Promise<Function[]>}
 */
export async function expressRealMiddleware() {
  const [{ default: express }, { default: cookieParser }] = await Promise.all([
    import('express'),
    import('cookie-parser'),
  ]);
  const store = sessionStore();
  const session = function sessionLike(req, _res, next) {
    if (req.session) {
      next();
      return;
    }
    req.sessionStore = store;
    const id = req.cookies?.sid ?? 'anonymous';
    req.sessionID = id;
    req.session = new Session(id, store.get(id));
    next();
  };
  const auth = function authLike(req, _res, next) {
    req._passport = { instance: auth };
    const userId = req.session?.userId;
    if (userId !== undefined) req.user = USERS.get(userId);
    else if (req.headers.authorization === 'Bearer bench-token') req.user = USERS.get(42);
    next();
  };
  return [
    express.json({ limit: BODY_LIMIT }),
    express.urlencoded({ extended: false, limit: BODY_LIMIT }),
    cookieParser(COOKIE_SECRET),
    session,
    auth,
  ];
}

/**
 * The Koa middleware, in the order an app mounts them.
 * @returns {Promise<Function[]>}
 */
export async function koaRealMiddleware() {
  const { bodyParser } = await import('@koa/bodyparser');
  const store = sessionStore();
  const session = async function koaSessionLike(ctx, next) {
    const id = ctx.cookies.get('sid') ?? 'anonymous';
    ctx.session = new Session(id, store.get(id));
    await next();
  };
  const auth = async function koaAuthLike(ctx, next) {
    const userId = ctx.session?.userId;
    if (userId !== undefined) ctx.state.user = USERS.get(userId);
    else if (ctx.get('authorization') === 'Bearer bench-token') ctx.state.user = USERS.get(42);
    await next();
  };
  return [bodyParser({ jsonLimit: BODY_LIMIT, formLimit: BODY_LIMIT, enableTypes: ['json', 'form'] }), session, auth];
}
