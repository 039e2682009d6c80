// Inbound Raft connections: every frame is one message from the member named in the handshake,
// addressed to us. Anything else is a protocol violation that closes the connection (the peer
// redials; Raft retransmits). A failure inside `onMessage` is our own bug, not the peer's: it is
// logged and the connection carries on.

import type { Logger } from '../common/logger.js';
import { decodeMessage } from '../codec/raft-codec.js';
import type { Message, NodeId } from '../raft/types.js';
import { type FrameHandler, ProtocolError } from './connection.js';
import { FrameType, isKnownFrameType } from './frame.js';

export interface RaftReceiverContext {
  readonly selfId: NodeId;
  /** The member id the handshake named. */
  readonly from: NodeId;
  readonly onMessage: (message: Message) => void;
  readonly logger: Logger;
}

export function raftReceiver(context: RaftReceiverContext): FrameHandler {
  return (type, payload) => {
    if (type !== FrameType.raftMessage) throw new ProtocolError(isKnownFrameType(type) ? `frame type ${type} is not allowed on a raft connection` : `unknown frame type ${type}`);
    const message = decodeMessage(ownBytes(payload));
    if (message.from !== context.from) throw new ProtocolError(`a message claims to be from member ${message.from} on member ${context.from}'s connection`);
    if (message.to !== context.selfId) throw new ProtocolError(`a message addressed to member ${message.to} arrived at member ${context.selfId}`);
    // The core would take a snapshotRequest as "install this image"; without the image beside it
    // (a snapshot connection carries both), it must never reach the core.
    if (message.type === 'snapshotRequest') throw new ProtocolError('a snapshot request arrived without its snapshot (it belongs on a snapshot connection)');
    try {
      context.onMessage(message);
    } catch (error) {
      context.logger.error('onMessage threw; the message is dropped', { from: message.from, type: message.type, error });
    }
  };
}

/**
 * The decoder hands out views into the socket's read buffers, and the codec decodes binary fields
 * (command data) as views too. An entry kept in the Raft log would then pin a whole read buffer (up
 * to 64 KiB) for a few bytes of command; copying a payload that shares a much larger buffer bounds
 * that waste to the frame itself.
 */
function ownBytes(payload: Buffer): Buffer {
  if (payload.byteLength * 2 >= payload.buffer.byteLength) return payload;
  // Not Buffer.from: small copies would land in Node's shared 8 KiB pool and pin that instead.
  const copy = Buffer.allocUnsafeSlow(payload.byteLength);
  payload.copy(copy);
  return copy;
}
