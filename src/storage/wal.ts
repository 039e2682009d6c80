// The write-ahead log's public face: what the node runtime imports. The parts live in ./wal/:
// format.ts (bytes), records.ts (meaning), log-shape.ts (rules), segment-scan.ts and recovery.ts
// (reading back), segment.ts and raft-log-store.ts (writing).

export { RaftLogStore, type SaveBatch, type WalOptions, type WalStats } from './wal/raft-log-store.js';
export type { RecoveredLog } from './wal/recovery.js';
export { DiskFullError, StorageContractError, StorageFatalError } from './errors.js';
export type { FileSystem, StoredFile } from './file-system.js';
