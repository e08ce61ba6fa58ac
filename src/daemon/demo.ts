/**
 * First start on an empty data dir, bound only to loopback: a ready-to-use demo target so
 * `iscsi-ls iscsi://127.0.0.1/` shows something. Never created when a portal is reachable
 * from the network (an open, ACL-less target must not appear on a LAN by surprise).
 */
import { randomUUID } from 'node:crypto';
import { GatewayConfig, emptyConfig, timestamp } from '../config/schema';

export const DEMO_TARGET = 'iqn.2003-01.org.linux-iscsi.iscsi-gateway:demo';
export const DEMO_DISK = 'file/demo';
export const DEMO_SIZE = 1024 * 1024 * 1024;

export function demoConfig(): GatewayConfig {
  const cfg = emptyConfig();
  const now = timestamp();
  cfg.disks[DEMO_DISK] = {
    backstore: 'file',
    path: 'images/demo.img',
    size: DEMO_SIZE,
    wwn: randomUUID(),
    controls: {},
    created: now,
  };
  cfg.targets[DEMO_TARGET] = {
    alias: 'demo',
    portal_group_tag: 1,
    acl_enabled: false,
    controls: {},
    disks: { [DEMO_DISK]: { lun_id: 0 } },
    clients: {},
    created: now,
  };
  return cfg;
}
