// Inbound 'client' connections (gateways, tools, and members forwarding on behalf of clients):
// request frames go to `onClientRequest`, answers go back under the request's id, in whatever order
// they finish. In-flight requests per connection are bounded; past the bound the answer is an error
// rather than an unbounded pile of pending promises. A request holding a string that is not valid
// UTF-8 is answered with an error (the connection stays), since its frame is otherwise sound.

import type { Logger } from '../common/logger.js';
import { decodeValue, encodeValue, InvalidTextError } from '../codec/raft-codec.js';
import { type FrameConnection, type FrameHandler, ProtocolError } from './connection.js';
import { checkClientRequest, type ClientRequestFrame, type ClientResponseFrame } from './client-frames.js';
import { FrameType } from './frame.js';

export const MAX_CLIENT_REQUESTS_IN_FLIGHT = 1024;

export type ClientRequestHandler = (body: unknown) => Promise<unknown>;
/** The answer body for a request whose text is not valid UTF-8, given why. */
export type InvalidTextAnswer = (reason: string) => unknown;

export interface ClientRequestServerContext {
  readonly connection: FrameConnection;
  readonly handler: ClientRequestHandler;
  readonly logger: Logger;
  readonly maxInFlight?: number;
  /** Without it, such a request gets a transport-level error (`ok: false`). */
  readonly onInvalidText?: InvalidTextAnswer | undefined;
}

export function clientRequestServer(context: ClientRequestServerContext): FrameHandler {
  const { connection, logger } = context;
  const maxInFlight = context.maxInFlight ?? MAX_CLIENT_REQUESTS_IN_FLIGHT;
  let inFlight = 0;

  const respond = (response: ClientResponseFrame): void => {
    if (connection.isClosing) return;
    let payload: Uint8Array;
    try {
      payload = encodeValue(response);
    } catch (error) {
      logger.error('a client response could not be encoded', { id: response.id, error });
      payload = encodeValue({ id: response.id, ok: false, error: 'the response could not be encoded' });
    }
    connection.sendFrame(FrameType.clientResponse, payload);
  };

  return (type, payload) => {
    if (type !== FrameType.clientRequest) throw new ProtocolError(`frame type ${type} is not allowed on a client connection`);
    let request: ClientRequestFrame;
    try {
      request = checkClientRequest(decodeValue(payload));
    } catch (error) {
      if (!(error instanceof InvalidTextError)) throw error;
      // The layout is sound, only some text is not: answer under the request's id (from the lenient
      // decoding, which is not acted on) and keep the connection. No usable id: the connection goes.
      const { id } = checkClientRequest(error.decoded);
      respond(context.onInvalidText === undefined ? { id, ok: false, error: `request refused: ${error.message}` } : { id, ok: true, body: context.onInvalidText(error.message) });
      return;
    }
    if (inFlight >= maxInFlight) {
      respond({ id: request.id, ok: false, error: `overloaded: ${maxInFlight} requests already in flight on this connection` });
      return;
    }
    inFlight += 1;
    let answer: Promise<unknown>;
    try {
      answer = Promise.resolve(context.handler(request.body));
    } catch (error) {
      answer = Promise.reject(error);
    }
    answer.then(
      (body) => respond({ id: request.id, ok: true, body }),
      (error: unknown) => respond({ id: request.id, ok: false, error: error instanceof Error ? error.message : String(error) }),
    ).finally(() => {
      inFlight -= 1;
    });
  };
}
