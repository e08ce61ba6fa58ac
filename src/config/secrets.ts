/**
 * CHAP passwords at rest, as ceph-iscsi keeps them (reference §1.6): when both key files exist
 * (settings priv_key / pub_key, PEM), passwords are stored as base64 RSA-OAEP(SHA-256)
 * ciphertext and the `*_password_encryption_enabled` flag of the auth block is set; decryption
 * falls back to OAEP(SHA-1), which older ceph-iscsi data used. Without the key files passwords
 * are stored in clear, flag false. Error messages never contain a password or ciphertext.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

export class SecretsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretsError';
  }
}

/** One auth block of the configuration (discovery, target or client), ceph-iscsi's keys. */
export interface StoredAuth {
  username: string;
  password: string;
  password_encryption_enabled: boolean;
  mutual_username: string;
  mutual_password: string;
  mutual_password_encryption_enabled: boolean;
}

export interface PlainCredentials {
  readonly username: string;
  readonly password: string;
  readonly mutual_username: string;
  readonly mutual_password: string;
}

export interface KeyFiles {
  /** PEM private key (ceph-iscsi: /etc/ceph/iscsi-gateway.key). */
  readonly privKeyFile?: string;
  /** PEM public key (ceph-iscsi: /etc/ceph/iscsi-gateway-pub.key). */
  readonly pubKeyFile?: string;
}

function readKey(file: string | undefined): string | undefined {
  if (!file) return undefined;
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new SecretsError(`cannot read key file ${file}: ${(e as Error).message}`);
  }
}

export class ChapSecrets {
  private constructor(
    private readonly publicKey: crypto.KeyObject | undefined,
    private readonly privateKey: crypto.KeyObject | undefined,
  ) {}

  /** Keys from files; encryption is enabled only when both exist (as ceph-iscsi). */
  static fromFiles(files: KeyFiles): ChapSecrets {
    const pubPem = readKey(files.pubKeyFile);
    const privPem = readKey(files.privKeyFile);
    try {
      const priv = privPem !== undefined ? crypto.createPrivateKey(privPem) : undefined;
      const pub = pubPem !== undefined ? crypto.createPublicKey(pubPem) : undefined;
      return new ChapSecrets(priv && pub ? pub : undefined, priv);
    } catch (e) {
      throw new SecretsError(`invalid CHAP key file: ${(e as Error).message}`);
    }
  }

  static fromPem(pubPem: string | undefined, privPem: string | undefined): ChapSecrets {
    const priv = privPem !== undefined ? crypto.createPrivateKey(privPem) : undefined;
    const pub = pubPem !== undefined ? crypto.createPublicKey(pubPem) : undefined;
    return new ChapSecrets(priv && pub ? pub : undefined, priv);
  }

  /** No keys: passwords are stored in clear. */
  static none(): ChapSecrets {
    return new ChapSecrets(undefined, undefined);
  }

  get encryptionEnabled(): boolean {
    return this.publicKey !== undefined;
  }

  /** The stored form of one password: [value, encrypted flag]. Empty stays empty and clear. */
  seal(password: string): [string, boolean] {
    if (!password || !this.publicKey) return [password, false];
    const ct = crypto.publicEncrypt({ key: this.publicKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, Buffer.from(password, 'utf8'));
    return [ct.toString('base64'), true];
  }

  /** The clear text of one stored password. */
  open(stored: string, encrypted: boolean): string {
    if (!encrypted || !stored) return stored;
    if (!this.privateKey) throw new SecretsError('a CHAP password is stored encrypted but the private key file is missing');
    const ct = Buffer.from(stored, 'base64');
    for (const oaepHash of ['sha256', 'sha1']) {
      try {
        return crypto.privateDecrypt({ key: this.privateKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash }, ct).toString('utf8');
      } catch {
        // try the next hash (ceph-iscsi's fallback for older data)
      }
    }
    throw new SecretsError('cannot decrypt a stored CHAP password with the configured private key');
  }

  /** The auth block to store for clear credentials. */
  sealAuth(c: PlainCredentials): StoredAuth {
    const [password, pe] = this.seal(c.password);
    const [mutualPassword, me] = this.seal(c.mutual_password);
    return {
      username: c.username,
      password,
      password_encryption_enabled: pe,
      mutual_username: c.mutual_username,
      mutual_password: mutualPassword,
      mutual_password_encryption_enabled: me,
    };
  }

  /** Clear credentials of a stored auth block. */
  openAuth(a: StoredAuth): PlainCredentials {
    return {
      username: a.username,
      password: this.open(a.password, a.password_encryption_enabled),
      mutual_username: a.mutual_username,
      mutual_password: this.open(a.mutual_password, a.mutual_password_encryption_enabled),
    };
  }

  /**
   * A copy of the auth block with clear passwords (GET /api/config?decrypt_passwords=true keeps
   * the flags as stored, as ceph-iscsi does).
   */
  decryptedAuth<T extends StoredAuth>(a: T): T {
    const p = this.openAuth(a);
    return { ...a, password: p.password, mutual_password: p.mutual_password };
  }
}

interface AuthHolders {
  discovery_auth: StoredAuth;
  targets: Record<string, { auth: StoredAuth; clients: Record<string, { auth: StoredAuth }> }>;
}

/** A deep copy of a configuration document with every CHAP password in clear. */
export function decryptConfigPasswords<T extends AuthHolders>(config: T, secrets: ChapSecrets): T {
  const copy = structuredClone(config);
  copy.discovery_auth = secrets.decryptedAuth(copy.discovery_auth);
  for (const t of Object.values(copy.targets)) {
    t.auth = secrets.decryptedAuth(t.auth);
    for (const c of Object.values(t.clients)) c.auth = secrets.decryptedAuth(c.auth);
  }
  return copy;
}

/** A fresh RSA key pair in PEM (for `iscsi-gateway` setup and tests); 2048 bits as ceph-iscsi's docs. */
export function generateChapKeyPair(): { publicKey: string; privateKey: string } {
  return crypto.generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}
