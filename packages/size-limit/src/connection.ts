/**
 * Closing a connection safely after refusing its request (RFC 9112 §9.6, "tear-down").
 *
 * A refused body is left unread, so the response says `Connection: close`. Node then
 * calls `socket.destroySoon()` once the response is flushed, which closes the socket as
 * soon as our FIN is queued. If the client is still sending, the kernel answers the
 * unread bytes with a TCP RST, and an RST that reaches the client before it has read
 * our 413 makes it lose the answer (EPIPE/ECONNRESET instead of 413). The fix servers
 * have long used (nginx's `lingering_close`) is to half-close, keep draining and
 * discarding what still arrives for a bounded time, then close. Draining costs no
 * memory: the request is already refused, so its parser drops every byte.
 */
import type { Socket } from 'node:net';

const LINGER = Symbol.for('perfstack.sizeLimit.linger');

type LingeringSocket = Socket & { [LINGER]?: number; destroySoon?: () => void };

function destroySocket(socket: Socket): void {
  socket.destroy();
}

function lingeringDestroySoon(this: LingeringSocket): void {
  if (this.writable) this.end();
  // Keep reading so that the client's remaining bytes and its FIN are consumed; the
  // socket closes by itself (autoDestroy) once both sides have ended.
  this.resume();
  const timer = setTimeout(destroySocket, this[LINGER] ?? 0, this);
  timer.unref();
  this.once('close', () => clearTimeout(timer));
}

/**
 * Makes the connection of `socket` close with a lingering close when Node closes it
 * after the current response (`Connection: close`).
 *
 * @param socket the request's socket (may be missing on a destroyed request)
 * @param lingerMs how long to keep draining before destroying the socket
 */
export function lingerOnClose(socket: Socket | null | undefined, lingerMs: number): void {
  if (socket === null || socket === undefined) return;
  const lingering = socket as LingeringSocket;
  if (lingering[LINGER] !== undefined) return;
  lingering[LINGER] = lingerMs;
  // Node's server calls `socket.destroySoon()` after a response marked `Connection: close`
  // (resOnFinish in lib/_http_server.js); an own property replaces it for this socket only.
  if (typeof lingering.destroySoon === 'function') lingering.destroySoon = lingeringDestroySoon;
}
