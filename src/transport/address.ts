// Peer addresses come from the membership as "host:port" strings (IPv6 in brackets: "[::1]:7000").
// Parsing them in one place keeps every dialer's view of an address the same.

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Splits "host:port"; throws a RangeError naming the address when it is not one. */
export function parseHostPort(address: string): HostPort {
  const separator = address.lastIndexOf(':');
  if (separator <= 0 || separator === address.length - 1) throw new RangeError(`address "${address}" is not host:port`);
  let host = address.slice(0, separator);
  const portText = address.slice(separator + 1);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  else if (host.includes(':')) throw new RangeError(`address "${address}": an IPv6 host must be in brackets`);
  if (!/^[0-9]{1,5}$/.test(portText)) throw new RangeError(`address "${address}" has no valid port`);
  const port = Number(portText);
  if (port < 1 || port > 65535) throw new RangeError(`address "${address}" has a port outside 1-65535`);
  return { host, port };
}

/** The form used in logs and in `peerAddress` answers. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
