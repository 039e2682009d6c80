// What applying a command answers. Results are data (they are stored for exactly-once retries and
// travel in snapshots), so they are plain records with a `kind`, never class instances.

export type CommandResult =
  | { readonly kind: 'put'; readonly key: string; readonly value: string; readonly createRevision: number; readonly modRevision: number; readonly version: number; readonly revision: number }
  | { readonly kind: 'delete'; readonly key: string; readonly deleted: boolean; readonly revision: number }
  | { readonly kind: 'compact'; readonly compactedRevision: number; readonly revision: number }
  | { readonly kind: 'error'; readonly code: string; readonly message: string };
