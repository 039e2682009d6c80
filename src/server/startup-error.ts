// A node that cannot start says why in one sentence an operator can act on.

export class StartupError extends Error {
  override readonly name: string = 'StartupError';
}
