//! The SFTP version 3 wire format (draft-ietf-secsh-filexfer-02): requests parsed from a
//! packet's bytes, replies written into a buffer. No I/O here.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The only protocol version we speak (what OpenSSH, rclone and WinSCP use).
pub const VERSION: u32 = 3;
/// Largest packet accepted, as OpenSSH's sftp-server (`SFTP_MAX_MSG_LENGTH`); a longer length
/// field ends the session (we cannot skip what we will not read).
pub const MAX_PACKET: usize = 256 * 1024;
/// Largest READ answered and WRITE accepted, advertised through `limits@openssh.com` so that
/// OpenSSH's client moves 255 KiB per request instead of 32 KiB.
pub const MAX_DATA: u32 = (MAX_PACKET - 1024) as u32;

// Packet types (§3, §7).
pub const INIT: u8 = 1;
pub const VERSION_REPLY: u8 = 2;
pub const OPEN: u8 = 3;
pub const CLOSE: u8 = 4;
pub const READ: u8 = 5;
pub const WRITE: u8 = 6;
pub const LSTAT: u8 = 7;
pub const FSTAT: u8 = 8;
pub const SETSTAT: u8 = 9;
pub const FSETSTAT: u8 = 10;
pub const OPENDIR: u8 = 11;
pub const READDIR: u8 = 12;
pub const REMOVE: u8 = 13;
pub const MKDIR: u8 = 14;
pub const RMDIR: u8 = 15;
pub const REALPATH: u8 = 16;
pub const STAT: u8 = 17;
pub const RENAME: u8 = 18;
pub const READLINK: u8 = 19;
pub const SYMLINK: u8 = 20;
pub const STATUS: u8 = 101;
pub const HANDLE: u8 = 102;
pub const DATA: u8 = 103;
pub const NAME: u8 = 104;
pub const ATTRS: u8 = 105;
pub const EXTENDED: u8 = 200;
pub const EXTENDED_REPLY: u8 = 201;

// Open flags (§6.3).
pub const OPEN_READ: u32 = 0x01;
pub const OPEN_WRITE: u32 = 0x02;
pub const OPEN_APPEND: u32 = 0x04;
pub const OPEN_CREATE: u32 = 0x08;
pub const OPEN_TRUNCATE: u32 = 0x10;
pub const OPEN_EXCLUSIVE: u32 = 0x20;

// Attribute flags (§5).
const ATTR_SIZE: u32 = 0x01;
const ATTR_UIDGID: u32 = 0x02;
const ATTR_PERMISSIONS: u32 = 0x04;
const ATTR_ACMODTIME: u32 = 0x08;
const ATTR_EXTENDED: u32 = 0x8000_0000;

/// Status codes (§7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Code {
    Ok = 0,
    Eof = 1,
    NoSuchFile = 2,
    PermissionDenied = 3,
    Failure = 4,
    BadMessage = 5,
    OpUnsupported = 8,
}

/// File attributes (§5); extended pairs are read and ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    pub size: Option<u64>,
    pub uid_gid: Option<(u32, u32)>,
    pub permissions: Option<u32>,
    /// (atime, mtime), seconds since the epoch.
    pub times: Option<(u32, u32)>,
}

/// A request, borrowed from nothing: strings are owned bytes (paths are checked for UTF-8
/// where they are used), WRITE data is a slice of the packet.
#[derive(Debug)]
pub enum Request {
    Init {
        version: u32,
    },
    Open {
        id: u32,
        path: Vec<u8>,
        flags: u32,
        attrs: Attrs,
    },
    Close {
        id: u32,
        handle: Vec<u8>,
    },
    Read {
        id: u32,
        handle: Vec<u8>,
        offset: u64,
        len: u32,
    },
    Write {
        id: u32,
        handle: Vec<u8>,
        offset: u64,
        data: Bytes,
    },
    Lstat {
        id: u32,
        path: Vec<u8>,
    },
    Fstat {
        id: u32,
        handle: Vec<u8>,
    },
    Setstat {
        id: u32,
        path: Vec<u8>,
        attrs: Attrs,
    },
    Fsetstat {
        id: u32,
        handle: Vec<u8>,
        attrs: Attrs,
    },
    Opendir {
        id: u32,
        path: Vec<u8>,
    },
    Readdir {
        id: u32,
        handle: Vec<u8>,
    },
    Remove {
        id: u32,
        path: Vec<u8>,
    },
    Mkdir {
        id: u32,
        path: Vec<u8>,
    },
    Rmdir {
        id: u32,
        path: Vec<u8>,
    },
    Realpath {
        id: u32,
        path: Vec<u8>,
    },
    Stat {
        id: u32,
        path: Vec<u8>,
    },
    Rename {
        id: u32,
        from: Vec<u8>,
        to: Vec<u8>,
    },
    Readlink {
        id: u32,
    },
    Symlink {
        id: u32,
    },
    Extended {
        id: u32,
        name: Vec<u8>,
        data: Bytes,
    },
    /// A type we do not know, answered OP_UNSUPPORTED.
    Unknown {
        id: u32,
    },
}

/// A packet we could not parse; `id` is known when the packet was long enough to carry it.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed {
    pub id: Option<u32>,
}

/// Reads fields off a packet body, failing instead of panicking when it runs short.
struct Fields(Bytes);

impl Fields {
    fn u32(&mut self) -> Option<u32> {
        (self.0.remaining() >= 4).then(|| self.0.get_u32())
    }

    fn u64(&mut self) -> Option<u64> {
        (self.0.remaining() >= 8).then(|| self.0.get_u64())
    }

    fn bytes(&mut self) -> Option<Bytes> {
        let len = self.u32()? as usize;
        (self.0.remaining() >= len).then(|| self.0.split_to(len))
    }

    fn string(&mut self) -> Option<Vec<u8>> {
        self.bytes().map(|b| b.to_vec())
    }

    fn attrs(&mut self) -> Option<Attrs> {
        let flags = self.u32()?;
        let mut attrs = Attrs::default();
        if flags & ATTR_SIZE != 0 {
            attrs.size = Some(self.u64()?);
        }
        if flags & ATTR_UIDGID != 0 {
            attrs.uid_gid = Some((self.u32()?, self.u32()?));
        }
        if flags & ATTR_PERMISSIONS != 0 {
            attrs.permissions = Some(self.u32()?);
        }
        if flags & ATTR_ACMODTIME != 0 {
            attrs.times = Some((self.u32()?, self.u32()?));
        }
        if flags & ATTR_EXTENDED != 0 {
            for _ in 0..self.u32()? {
                self.bytes()?;
                self.bytes()?;
            }
        }
        Some(attrs)
    }
}

impl Request {
    /// Parse one packet: its type byte and the rest of its body.
    pub fn parse(kind: u8, body: Bytes) -> Result<Request, Malformed> {
        let mut f = Fields(body);
        if kind == INIT {
            // Extension pairs after the version are allowed and ignored.
            return f
                .u32()
                .map(|version| Request::Init { version })
                .ok_or(Malformed { id: None });
        }
        let id = f.u32().ok_or(Malformed { id: None })?;
        let parsed = (|| {
            Some(match kind {
                OPEN => Request::Open {
                    id,
                    path: f.string()?,
                    flags: f.u32()?,
                    attrs: f.attrs()?,
                },
                CLOSE => Request::Close {
                    id,
                    handle: f.string()?,
                },
                READ => Request::Read {
                    id,
                    handle: f.string()?,
                    offset: f.u64()?,
                    len: f.u32()?,
                },
                WRITE => Request::Write {
                    id,
                    handle: f.string()?,
                    offset: f.u64()?,
                    data: f.bytes()?,
                },
                LSTAT => Request::Lstat {
                    id,
                    path: f.string()?,
                },
                FSTAT => Request::Fstat {
                    id,
                    handle: f.string()?,
                },
                SETSTAT => Request::Setstat {
                    id,
                    path: f.string()?,
                    attrs: f.attrs()?,
                },
                FSETSTAT => Request::Fsetstat {
                    id,
                    handle: f.string()?,
                    attrs: f.attrs()?,
                },
                OPENDIR => Request::Opendir {
                    id,
                    path: f.string()?,
                },
                READDIR => Request::Readdir {
                    id,
                    handle: f.string()?,
                },
                REMOVE => Request::Remove {
                    id,
                    path: f.string()?,
                },
                MKDIR => {
                    let path = f.string()?;
                    f.attrs()?;
                    Request::Mkdir { id, path }
                }
                RMDIR => Request::Rmdir {
                    id,
                    path: f.string()?,
                },
                REALPATH => Request::Realpath {
                    id,
                    path: f.string()?,
                },
                STAT => Request::Stat {
                    id,
                    path: f.string()?,
                },
                RENAME => Request::Rename {
                    id,
                    from: f.string()?,
                    to: f.string()?,
                },
                READLINK => Request::Readlink { id },
                SYMLINK => Request::Symlink { id },
                EXTENDED => {
                    let name = f.string()?;
                    Request::Extended {
                        id,
                        name,
                        data: f.0.split_off(0),
                    }
                }
                _ => Request::Unknown { id },
            })
        })();
        parsed.ok_or(Malformed { id: Some(id) })
    }

    /// Parse the two paths of `posix-rename@openssh.com`.
    pub fn two_paths(data: Bytes) -> Option<(Vec<u8>, Vec<u8>)> {
        let mut f = Fields(data);
        Some((f.string()?, f.string()?))
    }

    /// Parse the handle of `fsync@openssh.com`.
    pub fn one_handle(data: Bytes) -> Option<Vec<u8>> {
        Fields(data).string()
    }
}

/// A reply being written: `finish` fills in the length.
pub struct Reply(BytesMut);

impl Reply {
    fn start(out: &mut BytesMut, kind: u8) -> Reply {
        let mut buf = out.split_off(out.len());
        buf.put_u32(0);
        buf.put_u8(kind);
        Reply(buf)
    }

    fn finish(mut self, out: &mut BytesMut) {
        let len = (self.0.len() - 4) as u32;
        self.0[..4].copy_from_slice(&len.to_be_bytes());
        out.unsplit(self.0);
    }

    fn string(&mut self, value: &[u8]) {
        self.0.put_u32(value.len() as u32);
        self.0.put_slice(value);
    }

    fn attrs(&mut self, attrs: &Attrs) {
        let mut flags = 0;
        if attrs.size.is_some() {
            flags |= ATTR_SIZE;
        }
        if attrs.uid_gid.is_some() {
            flags |= ATTR_UIDGID;
        }
        if attrs.permissions.is_some() {
            flags |= ATTR_PERMISSIONS;
        }
        if attrs.times.is_some() {
            flags |= ATTR_ACMODTIME;
        }
        self.0.put_u32(flags);
        if let Some(size) = attrs.size {
            self.0.put_u64(size);
        }
        if let Some((uid, gid)) = attrs.uid_gid {
            self.0.put_u32(uid);
            self.0.put_u32(gid);
        }
        if let Some(permissions) = attrs.permissions {
            self.0.put_u32(permissions);
        }
        if let Some((atime, mtime)) = attrs.times {
            self.0.put_u32(atime);
            self.0.put_u32(mtime);
        }
    }
}

/// SSH_FXP_VERSION with our extensions, as (name, data) pairs.
pub fn version(out: &mut BytesMut, extensions: &[(&str, &[u8])]) {
    let mut reply = Reply::start(out, VERSION_REPLY);
    reply.0.put_u32(VERSION);
    for (name, data) in extensions {
        reply.string(name.as_bytes());
        reply.string(data);
    }
    reply.finish(out);
}

pub fn status(out: &mut BytesMut, id: u32, code: Code, message: &str) {
    let mut reply = Reply::start(out, STATUS);
    reply.0.put_u32(id);
    reply.0.put_u32(code as u32);
    reply.string(message.as_bytes());
    reply.string(b"en");
    reply.finish(out);
}

pub fn handle(out: &mut BytesMut, id: u32, handle: &[u8]) {
    let mut reply = Reply::start(out, HANDLE);
    reply.0.put_u32(id);
    reply.string(handle);
    reply.finish(out);
}

/// SSH_FXP_DATA, the content read into place by `fill` (which returns how much it wrote,
/// at most `len`), so that file data is copied once, straight into the output.
pub fn data<E>(
    out: &mut BytesMut,
    id: u32,
    len: usize,
    fill: impl FnOnce(&mut [u8]) -> Result<usize, E>,
) -> Result<usize, E> {
    let mut reply = Reply::start(out, DATA);
    reply.0.put_u32(id);
    let at = reply.0.len();
    reply.0.put_u32(0);
    reply.0.resize(at + 4 + len, 0);
    match fill(&mut reply.0[at + 4..]) {
        Ok(read) => {
            reply.0.truncate(at + 4 + read);
            reply.0[at..at + 4].copy_from_slice(&(read as u32).to_be_bytes());
            reply.finish(out);
            Ok(read)
        }
        Err(error) => Err(error),
    }
}

/// One entry of an SSH_FXP_NAME reply.
pub struct Name {
    pub filename: String,
    pub longname: String,
    pub attrs: Attrs,
}

pub fn names(out: &mut BytesMut, id: u32, names: &[Name]) {
    let mut reply = Reply::start(out, NAME);
    reply.0.put_u32(id);
    reply.0.put_u32(names.len() as u32);
    for name in names {
        reply.string(name.filename.as_bytes());
        reply.string(name.longname.as_bytes());
        reply.attrs(&name.attrs);
    }
    reply.finish(out);
}

pub fn attrs(out: &mut BytesMut, id: u32, attrs: &Attrs) {
    let mut reply = Reply::start(out, ATTRS);
    reply.0.put_u32(id);
    reply.attrs(attrs);
    reply.finish(out);
}

/// SSH_FXP_EXTENDED_REPLY carrying `data` as is.
pub fn extended_reply(out: &mut BytesMut, id: u32, data: &[u8]) {
    let mut reply = Reply::start(out, EXTENDED_REPLY);
    reply.0.put_u32(id);
    reply.0.put_slice(data);
    reply.finish(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(parts: &[&[u8]]) -> Bytes {
        Bytes::from(parts.concat())
    }

    fn string(value: &[u8]) -> Vec<u8> {
        [&(value.len() as u32).to_be_bytes()[..], value].concat()
    }

    #[test]
    fn parses_open_with_attributes() {
        let body = packet(&[
            &7u32.to_be_bytes(),
            &string(b"/personal-files/a.txt"),
            &(OPEN_WRITE | OPEN_CREATE).to_be_bytes(),
            &(ATTR_PERMISSIONS | ATTR_ACMODTIME).to_be_bytes(),
            &0o644u32.to_be_bytes(),
            &1u32.to_be_bytes(),
            &2u32.to_be_bytes(),
        ]);
        match Request::parse(OPEN, body).unwrap() {
            Request::Open {
                id,
                path,
                flags,
                attrs,
            } => {
                assert_eq!(id, 7);
                assert_eq!(path, b"/personal-files/a.txt");
                assert_eq!(flags, OPEN_WRITE | OPEN_CREATE);
                assert_eq!(attrs.permissions, Some(0o644));
                assert_eq!(attrs.times, Some((1, 2)));
                assert_eq!(attrs.size, None);
            }
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn truncated_packets_are_malformed_with_their_id() {
        // A READ whose handle claims more bytes than there are.
        let body = packet(&[&9u32.to_be_bytes(), &100u32.to_be_bytes(), b"abc"]);
        assert_eq!(Request::parse(READ, body).unwrap_err(), Malformed { id: Some(9) });
        assert_eq!(
            Request::parse(STAT, Bytes::from_static(b"\0\0")).unwrap_err(),
            Malformed { id: None }
        );
        // Attributes claiming more extended pairs than present.
        let body = packet(&[
            &1u32.to_be_bytes(),
            &string(b"/x"),
            &ATTR_EXTENDED.to_be_bytes(),
            &u32::MAX.to_be_bytes(),
        ]);
        assert_eq!(
            Request::parse(SETSTAT, body).unwrap_err(),
            Malformed { id: Some(1) }
        );
    }

    #[test]
    fn unknown_types_keep_their_id() {
        let body = packet(&[&5u32.to_be_bytes(), b"whatever"]);
        assert!(matches!(Request::parse(99, body), Ok(Request::Unknown { id: 5 })));
    }

    #[test]
    fn replies_carry_their_length() {
        let mut out = BytesMut::new();
        status(&mut out, 3, Code::NoSuchFile, "no");
        let first = out.len();
        let read = data(&mut out, 4, 10, |buf| {
            buf[..3].copy_from_slice(b"abc");
            Ok::<_, ()>(3)
        })
        .unwrap();
        assert_eq!(read, 3);
        assert_eq!(&out[..4], &((first - 4) as u32).to_be_bytes());
        assert_eq!(out[4], STATUS);
        let second = &out[first..];
        assert_eq!(&second[..4], &((second.len() - 4) as u32).to_be_bytes());
        assert_eq!(second[4], DATA);
        assert_eq!(&second[second.len() - 7..], b"\0\0\0\x03abc");
    }
}
