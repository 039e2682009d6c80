// A ClusterBackend that records the calls it gets, for in-process API tests.

import type {
  ChangeOptions, ClusterBackend, MemberChangeOutcome, MembersView, NewMember, StreamBody, TransferOutcome,
} from '../../../src/api/backend.js';

export class ClusterBackendStub implements ClusterBackend {
  readonly adminCalls: string[] = [];
  members(): Promise<MembersView> {
    this.adminCalls.push('members');
    return Promise.resolve({
      clusterId: '0123456789abcdef', leader: 1, term: 2, membershipIndex: 3, view: 'leader', nodeId: 1,
      members: [{ id: 1, peerAddr: 'a:1', httpAddr: 'a:2', role: 'voter', matchIndex: 9, caughtUp: true, live: true }],
    });
  }
  addMember(member: NewMember, options: ChangeOptions): Promise<MemberChangeOutcome> {
    this.adminCalls.push(`add ${member.id} ${member.peerAddr} ${member.httpAddr} force=${options.force}`);
    return Promise.resolve({ change: 'added', id: member.id, index: 7, members: [] });
  }
  removeMember(id: number, options: ChangeOptions): Promise<MemberChangeOutcome> {
    this.adminCalls.push(`remove ${id} force=${options.force}`);
    return Promise.resolve({ change: 'removed', id, index: 8, members: [] });
  }
  promoteMember(id: number, options: ChangeOptions): Promise<MemberChangeOutcome> {
    this.adminCalls.push(`promote ${id} force=${options.force}`);
    return Promise.resolve({ change: 'promoted', id, index: 9, members: [] });
  }
  transferLeader(id: number | null): Promise<TransferOutcome> {
    this.adminCalls.push(`transfer ${id ?? 'any'}`);
    return Promise.resolve({ previousLeader: 1, leader: id ?? 2, tookMs: 5 });
  }
  snapshot(): Promise<StreamBody> {
    this.adminCalls.push('snapshot');
    async function* chunks(): AsyncGenerator<Uint8Array> {
      yield new Uint8Array([1, 2]);
      yield new Uint8Array([3]);
    }
    return Promise.resolve({ contentType: 'application/octet-stream', fileName: 'x.backup', chunks: chunks() });
  }
}
