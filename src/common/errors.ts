// The one catalogue of errors clients see, shared by node, gateway and client. Each code has a
// fixed HTTP status, and the status tells a client what a retry may do (ARCHITECTURE.md):
//   503: definitely not proposed, safe to retry anywhere;
//   504: proposed, outcome unknown: retry only with the same client id and sequence number.

export const ERROR_CATALOGUE = {
  BAD_REQUEST: { status: 400, message: 'The request is malformed.' },
  INVALID_KEY: { status: 400, message: 'The key is invalid.' },
  INVALID_JSON: { status: 400, message: 'The body is not valid JSON.' },
  INVALID_REVISION: { status: 400, message: 'The revision is not a positive integer.' },
  KEY_NOT_FOUND: { status: 404, message: 'The key does not exist.' },
  NOT_FOUND: { status: 404, message: 'No such route.' },
  METHOD_NOT_ALLOWED: { status: 405, message: 'The method is not allowed on this route.' },
  REQUEST_TIMEOUT: { status: 408, message: 'The request did not arrive in time; nothing happened.' },
  CONFLICT: { status: 409, message: 'The request conflicts with one in progress.' },
  STALE_SEQUENCE: { status: 409, message: 'This client sequence number was already acknowledged or forgotten; it was not applied again.' },
  UNSUPPORTED_COMMAND: { status: 400, message: 'The command is not supported by this version.' },
  QUORUM_AT_RISK: { status: 409, message: 'The change would leave the cluster without a quorum of live voters; it was not made (force it to override).' },
  LEARNER_BEHIND: { status: 409, message: 'The learner has not caught up with the leader\'s log; it was not promoted (force it to override).' },
  COMPACTED: { status: 410, message: 'The requested revision has been compacted.' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'The body must be JSON.' },
  TOO_LARGE: { status: 413, message: 'The request is too large.' },
  FUTURE_REVISION: { status: 400, message: 'The requested revision is newer than the store.' },
  OVERLOADED: { status: 429, message: 'The node is overloaded; retry later.' },
  RATE_LIMITED: { status: 429, message: 'Too many requests; retry later.' },
  INTERNAL: { status: 500, message: 'An internal error occurred.' },
  NO_LEADER: { status: 503, message: 'No leader is known; the request was not proposed.' },
  NO_QUORUM: { status: 503, message: 'The cluster has no quorum; the request was not proposed.' },
  DISK_FULL: { status: 507, message: 'The disk is full; the request was not proposed.' },
  OUTCOME_UNKNOWN: { status: 504, message: 'The request was proposed but its outcome is unknown; retry with the same client id and sequence number.' },
  SHUTTING_DOWN: { status: 503, message: 'The node is shutting down; the request was not proposed.' },
  TRANSFER_FAILED: { status: 503, message: 'Leadership was not handed over in time; nothing changed.' },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERROR_CATALOGUE;

export interface ErrorBody {
  readonly error: string;
  readonly code: ErrorCode;
}

/** An error a client should see: a stable code, its status, and a sentence. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;
  constructor(readonly code: ErrorCode, message?: string, readonly retryAfterSeconds?: number) {
    super(message ?? ERROR_CATALOGUE[code].message);
    this.status = ERROR_CATALOGUE[code].status;
  }

  body(): ErrorBody {
    return { error: this.message, code: this.code };
  }
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CATALOGUE, value);
}
