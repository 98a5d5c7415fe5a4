//! The state file: a satellite's registry objects on disk, as a stream of the link's own
//! `Change` messages, written and read chunk by chunk so that neither end ever holds a second
//! whole copy of the registry.
//!
//! The satellite writes it from what the master sends (a snapshot as it arrives, then
//! compactions of the batch log into it); the generator writes it from the store; the satellite
//! boots from it. The messages are `link.proto`'s, converted by [`crate::link::convert`], so
//! there is one encoding of the model, not a second hand-written codec beside the link's.
//!
//! # Format (version 4)
//! ```text
//! offset  size  field
//!      0     8  magic "ORRSTATE"
//!      8     4  format version, u32 LE (4)
//!     12     4  zero (reserved)
//!     16     8  journal serial the objects reflect, i64 LE
//!     24     8  generation, u64 LE (see below)
//!     32     4  CRC-32 (IEEE) of bytes 0..32
//!     36     …  chunks, each:  length u32 LE (1 ..= MAX_CHUNK)
//!                              CRC-32 of the payload, u32 LE
//!                              payload: a pb::ChangeBatch whose `changes` are objects
//!                              (after = upto = the serial; no removals)
//!      …    16  trailer:       0u32 (a zero length ends the chunks)
//!                              object count, u64 LE
//!                              CRC-32 of every chunk record (length, CRC, payload) in order
//!   then the end of the file.
//! ```
//! Each chunk's CRC catches a flipped bit where it is; the trailer's count and checksum catch a
//! chunk lost, repeated or moved, and a file cut at a chunk boundary (no trailer). The header is
//! written last (the serial is known at the end when the generator writes), so a writer killed
//! in the middle leaves a temporary file with a bad header, never a state file.
//!
//! The generation names the line of descent of the file: it changes when a master snapshot
//! replaces the objects and is kept by a compaction (the same objects plus batches). The batch
//! log beside a satellite's state file carries the generation of the file it continues; a log
//! of another generation is not replayed (see the satellite's `link::batch_log`).
//!
//! # Older formats
//! Version 3 (`ORRSNAP\0`, the satellite's hand-written codec) is not read: a satellite that
//! finds one starts bare and takes a snapshot from its master, which rewrites the file in this
//! format ([`StateFileError::OlderFormat`] says so). One full transfer once per satellite was
//! judged cheaper than keeping a second decoder of the model alive and fuzzed for a release.
//!
//! # Reading
//! [`StateFileReader`] yields the objects one by one, holding one chunk at a time. A file is
//! sound only once the iterator ends (`None`) without an error: a caller that builds from it
//! must not adopt what it built before then, so a torn or corrupt file is refused, never half
//! adopted. Every error says at which offset it was found.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use prost::Message;

use crate::atomic_file::AtomicFile;
use crate::link::pb;
use crate::{Change, Name, Serial};

mod decode;

/// The first bytes of a state file.
pub const MAGIC: &[u8; 8] = b"ORRSTATE";
/// The first bytes of the version 1–3 snapshot format, refused with a clear error.
const OLD_MAGIC: &[u8; 8] = b"ORRSNAP\0";
/// The format version written and read.
pub const FORMAT_VERSION: u32 = 4;
/// Header bytes, checksum included.
pub const HEADER_LEN: usize = 36;
/// Bytes before each chunk's payload (length, CRC).
pub const CHUNK_HEADER_LEN: usize = 8;
/// The trailer's length.
pub const TRAILER_LEN: usize = 16;
/// The largest chunk a reader accepts: a bound on its memory, far above what writers make.
pub const MAX_CHUNK: usize = 64 << 20;
/// A writer closes a chunk once its payload reaches this size.
const CHUNK_TARGET: usize = 1 << 20;

/// How much of each object a whole read ([`read_objects`]) decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Every object whole: for the Whois/RDAP directory, tools and tests.
    Full,
    /// What the DNS tables are built from, for a satellite that serves DNS only: zones, hosts,
    /// domains, DNSSEC sets and registrars, with the Whois-only fields of domains (ROID,
    /// registrar, contacts) and hosts (registrar) left empty, and no contacts. At 1,000,000
    /// delegations that is about a third less to allocate and fill at a start (250,000
    /// contacts and six strings a domain). The fields passed over are not looked into: the
    /// chunk's checksum covers them, and a read in `Full` (a compaction, a directory build)
    /// still checks them. Registrars stay: they are few, and a satellite's restore tells from
    /// them whether its saved state has the Whois data.
    Dns,
}

impl Detail {
    /// The detail a satellite reads its state in: whole if it serves Whois or RDAP (the
    /// directory is built from the objects), otherwise only what DNS needs.
    pub fn for_serving(whois_or_rdap: bool) -> Self {
        if whois_or_rdap { Self::Full } else { Self::Dns }
    }

    /// `change` as this detail keeps it; `None` for an object it leaves out. The direct
    /// decoder makes the same objects without reading what this drops.
    fn keep(self, change: Change) -> Option<Change> {
        match (self, change) {
            (Self::Full, change) => Some(change),
            (Self::Dns, Change::Contact(_)) => None,
            (Self::Dns, Change::Domain(d)) => Some(Change::Domain(crate::model::Domain {
                roid: String::new(),
                registrar: String::new(),
                registrant: None,
                admin: None,
                tech: None,
                billing: None,
                ..d
            })),
            (Self::Dns, Change::Host(h)) => Some(Change::Host(crate::model::Host {
                registrar: None,
                ..h
            })),
            (Self::Dns, change) => Some(change),
        }
    }
}

/// A chunk's objects as a read keeps them, and how many it left out ([`Detail::Dns`]): the
/// trailer counts those too.
#[derive(Debug)]
struct Chunk {
    objects: Vec<Change>,
    left_out: u64,
}

/// What the header says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Journal serial the objects reflect.
    pub serial: Serial,
    /// Line of descent (see the module docs).
    pub generation: u64,
}

/// Why a state file is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateFileError {
    #[error("at offset {offset}: {source}")]
    Io { offset: u64, source: io::Error },
    #[error("not a state file (bad magic)")]
    BadMagic,
    #[error(
        "a state file in the format of an older release (snapshot format {version}), which this \
         release does not read; start without it and the satellite takes a snapshot from its \
         master (or write a new one with orrery-generator --satellite-snapshot)"
    )]
    OlderFormat { version: u32 },
    #[error(
        "state file format version {version} is not supported (this build reads {FORMAT_VERSION})"
    )]
    UnsupportedVersion { version: u32 },
    #[error("header checksum mismatch: the file is corrupt or was not finished")]
    HeaderChecksum,
    #[error("truncated at offset {offset}: the file ends inside {what}")]
    Truncated { offset: u64, what: &'static str },
    #[error("chunk at offset {offset}: length {len} out of range (1 to {MAX_CHUNK})")]
    ChunkLength { offset: u64, len: u64 },
    #[error("chunk at offset {offset}: checksum mismatch, the file is corrupt")]
    ChunkChecksum { offset: u64 },
    #[error("chunk at offset {offset}: {reason}")]
    Undecodable { offset: u64, reason: String },
    #[error("trailer at offset {offset}: {announced} objects announced, {found} read")]
    Count {
        offset: u64,
        announced: u64,
        found: u64,
    },
    #[error(
        "trailer at offset {offset}: checksum over the chunks mismatch (a chunk lost, repeated or moved)"
    )]
    FinalChecksum { offset: u64 },
    #[error("bytes after the trailer at offset {offset}")]
    TrailingBytes { offset: u64 },
}

/// Writes a state file chunk by chunk into a temporary file beside `path`; nothing changes at
/// `path` until [`StateFileWriter::finish`], and a writer dropped unfinished leaves it as it was.
#[derive(Debug)]
pub struct StateFileWriter {
    file: AtomicFile,
    chunk: pb::ChangeBatch,
    chunk_len: usize,
    count: u64,
    checksum: crc32fast::Hasher,
    scratch: Vec<u8>,
}

impl StateFileWriter {
    /// Starts a file that will replace `path`.
    pub fn create(path: &Path) -> io::Result<Self> {
        let mut file = AtomicFile::create(path)?;
        // A placeholder that no reader accepts until `finish` writes the real header.
        file.write_all(&[0; HEADER_LEN])?;
        Ok(Self {
            file,
            chunk: pb::ChangeBatch::default(),
            chunk_len: 0,
            count: 0,
            checksum: crc32fast::Hasher::new(),
            scratch: Vec::new(),
        })
    }

    /// Adds an object. A removal is an error: a state file holds objects.
    pub fn push(&mut self, change: &Change) -> io::Result<()> {
        self.push_pb(pb::Change::from(change))
    }

    /// Adds an object already in its message form (as it came off the link). Removals are
    /// refused, as by [`StateFileWriter::push`].
    pub fn push_pb(&mut self, change: pb::Change) -> io::Result<()> {
        use pb::change::Change as Kind;
        let object = matches!(
            change.change,
            Some(
                Kind::Zone(_)
                    | Kind::Domain(_)
                    | Kind::Host(_)
                    | Kind::Contact(_)
                    | Kind::Registrar(_)
                    | Kind::Dnssec(_)
            )
        );
        if !object {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a state file holds objects, not removals",
            ));
        }
        self.chunk_len += change.encoded_len() + 5;
        self.chunk.changes.push(change);
        self.count += 1;
        if self.chunk_len >= CHUNK_TARGET {
            self.flush_chunk()?;
        }
        Ok(())
    }

    /// Objects pushed so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    fn flush_chunk(&mut self) -> io::Result<()> {
        if self.chunk.changes.is_empty() {
            return Ok(());
        }
        self.scratch.clear();
        self.chunk.encode(&mut self.scratch).expect("a Vec grows");
        self.chunk.changes.clear();
        self.chunk_len = 0;
        let mut head = [0; CHUNK_HEADER_LEN];
        head[..4].copy_from_slice(&(self.scratch.len() as u32).to_le_bytes());
        head[4..].copy_from_slice(&crc32fast::hash(&self.scratch).to_le_bytes());
        self.checksum.update(&head);
        self.checksum.update(&self.scratch);
        self.file.write_all(&head)?;
        self.file.write_all(&self.scratch)
    }

    /// Writes the last chunk, the trailer and the header, syncs and renames the file over the
    /// old one. Returns the objects written.
    pub fn finish(mut self, header: Header) -> io::Result<u64> {
        self.flush_chunk()?;
        let mut trailer = [0; TRAILER_LEN];
        trailer[4..12].copy_from_slice(&self.count.to_le_bytes());
        trailer[12..].copy_from_slice(&self.checksum.clone().finalize().to_le_bytes());
        self.file.write_all(&trailer)?;
        self.file.write_at(0, &encode_header(header))?;
        self.file.commit()?;
        Ok(self.count)
    }
}

fn encode_header(h: Header) -> [u8; HEADER_LEN] {
    let mut b = [0; HEADER_LEN];
    b[..8].copy_from_slice(MAGIC);
    b[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    b[16..24].copy_from_slice(&h.serial.to_le_bytes());
    b[24..32].copy_from_slice(&h.generation.to_le_bytes());
    let crc = crc32fast::hash(&b[..32]);
    b[32..].copy_from_slice(&crc.to_le_bytes());
    b
}

/// Writes `objects` as the state file at `path` (atomically); removals are refused.
pub fn write_state_file<'a>(
    path: &Path,
    header: Header,
    objects: impl IntoIterator<Item = &'a Change>,
) -> io::Result<u64> {
    let mut w = StateFileWriter::create(path)?;
    for c in objects {
        w.push(c)?;
    }
    w.finish(header)
}

/// Reads a state file one chunk at a time (see the module docs: sound only once the iterator
/// ends without an error).
#[derive(Debug)]
pub struct StateFileReader<R> {
    input: R,
    header: Header,
    /// Offset of the next byte to read.
    offset: u64,
    /// The current chunk's objects, decoded.
    pending: std::vec::IntoIter<Change>,
    count: u64,
    checksum: crc32fast::Hasher,
    buf: Vec<u8>,
    /// The trailer was checked, or an error was returned: nothing more to yield.
    done: bool,
}

/// Opens the state file at `path` and checks its header.
pub fn open(path: &Path) -> Result<StateFileReader<BufReader<File>>, StateFileError> {
    let file = File::open(path).map_err(|source| StateFileError::Io { offset: 0, source })?;
    StateFileReader::new(BufReader::with_capacity(1 << 20, file))
}

/// A registry's objects as a state file's chunks decoded them, in file order, each chunk its
/// own vector. A start reads 1.85 million objects at 1M delegations: joining the chunks into
/// one vector would copy all of them (about 0.4 GB) into a fresh allocation before the build
/// reads them again; the build takes the chunks as they are instead, one per thread.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Objects {
    chunks: Vec<Vec<Change>>,
}

impl Objects {
    /// The objects, in order.
    pub fn iter(&self) -> impl Clone + Iterator<Item = &Change> {
        self.chunks.iter().flatten()
    }

    /// The chunks, in order (none is empty).
    pub fn chunks(&self) -> &[Vec<Change>] {
        &self.chunks
    }

    /// How many objects.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Keeps the objects `keep` says yes to, in order.
    pub fn retain(&mut self, mut keep: impl FnMut(&Change) -> bool) {
        for c in &mut self.chunks {
            c.retain(&mut keep);
        }
        self.chunks.retain(|c| !c.is_empty());
    }

    /// Every object in one vector (a copy of them all, unless there is one chunk).
    pub fn into_vec(mut self) -> Vec<Change> {
        if self.chunks.len() == 1 {
            return self.chunks.pop().expect("one chunk");
        }
        let mut all = Vec::with_capacity(self.len());
        for mut c in self.chunks {
            all.append(&mut c);
        }
        all
    }
}

impl From<Vec<Change>> for Objects {
    /// One chunk (none when `objects` is empty).
    fn from(objects: Vec<Change>) -> Self {
        Self {
            chunks: if objects.is_empty() {
                Vec::new()
            } else {
                vec![objects]
            },
        }
    }
}

impl IntoIterator for Objects {
    type Item = Change;
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<Vec<Change>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.chunks.into_iter().flatten()
    }
}

/// Reads a whole state file: the header and every object, or the first error. As
/// [`read_objects`], in one vector (a copy of every object: for tests and tools).
pub fn read_state_file(path: &Path) -> Result<(Header, Vec<Change>), StateFileError> {
    read_objects(path, Detail::Full).map(|(header, objects)| (header, objects.into_vec()))
}

/// Reads a whole state file: the header and every object, chunk by chunk, or the first
/// error, each object in `detail`. Nothing is returned before the last chunk's CRC, the object
/// count and the trailer's
/// checksum over every chunk are checked: a corrupt or torn file gives an error, never part of
/// its objects.
///
/// The file is read and checked in order on this thread (chunk checksums, the running
/// checksum, the trailer); turning the chunks' messages into objects, most of the time a start
/// takes, is spread over the cores: the chunks are independent, each checked before it is
/// handed on. At most two chunks a core wait in between.
pub fn read_objects(path: &Path, detail: Detail) -> Result<(Header, Objects), StateFileError> {
    use std::sync::{Arc, Mutex, mpsc};
    let mut reader = open(path)?;
    let header = reader.header();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    let mut decoded: Vec<Option<Result<Chunk, StateFileError>>> = Vec::new();
    let end = std::thread::scope(|scope| {
        let (work, jobs) = mpsc::sync_channel::<(usize, u64, Vec<u8>)>(2 * workers);
        let jobs = Arc::new(Mutex::new(jobs));
        let (done, results) = mpsc::channel();
        for _ in 0..workers {
            let (jobs, done) = (Arc::clone(&jobs), done.clone());
            scope.spawn(move || {
                loop {
                    let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((i, at, body)) = job else { break };
                    if done.send((i, decode_chunk(at, &body, detail))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done);
        let mut sent = 0;
        let end = loop {
            match reader.read_raw() {
                Ok(Raw::Chunk { at, body }) => {
                    // The workers stop only when this side hangs up.
                    let _ = work.send((sent, at, body));
                    sent += 1;
                }
                Ok(Raw::End { at, head }) => break Ok((at, head)),
                Err(e) => break Err(e),
            }
        };
        drop(work);
        decoded.resize_with(sent, || None);
        for (i, result) in results {
            decoded[i] = Some(result);
        }
        end
    });
    // The first error in file order, as the streaming reader would report it.
    let mut chunks = Vec::with_capacity(decoded.len());
    let mut left_out = 0;
    for chunk in decoded {
        match chunk {
            Some(Ok(c)) => {
                left_out += c.left_out;
                if !c.objects.is_empty() {
                    chunks.push(c.objects);
                }
            }
            Some(Err(e)) => return Err(e),
            // A worker that did not answer ended with a panic, which the scope re-raised.
            None => unreachable!("every chunk handed on is decoded"),
        }
    }
    let objects = Objects { chunks };
    let (at, head) = end?;
    reader.count = objects.len() as u64 + left_out;
    reader.trailer(at, head)?;
    Ok((header, objects))
}

/// A chunk as read and checked, not decoded yet, or the trailer's first bytes.
enum Raw {
    Chunk {
        at: u64,
        body: Vec<u8>,
    },
    End {
        at: u64,
        head: [u8; CHUNK_HEADER_LEN],
    },
}

/// The objects of a chunk's message (at offset `at`, for errors) in `detail`: straight from
/// its bytes when the chunk is as the writers make it ([`decode`]), otherwise, and for every
/// error, through the link's messages and conversion.
fn decode_chunk(at: u64, body: &[u8], detail: Detail) -> Result<Chunk, StateFileError> {
    if let Some(chunk) = decode::objects(body, detail) {
        return Ok(chunk);
    }
    let all = decode_chunk_via_messages(at, body)?;
    let count = all.len();
    let objects: Vec<Change> = all.into_iter().filter_map(|c| detail.keep(c)).collect();
    Ok(Chunk {
        left_out: (count - objects.len()) as u64,
        objects,
    })
}

/// The general path of [`decode_chunk`]: prost's messages, then [`Change::try_from`].
fn decode_chunk_via_messages(at: u64, body: &[u8]) -> Result<Vec<Change>, StateFileError> {
    let batch = pb::ChangeBatch::decode(body).map_err(|e| StateFileError::Undecodable {
        offset: at,
        reason: format!("not a ChangeBatch: {e}"),
    })?;
    batch
        .changes
        .into_iter()
        .map(|c| {
            let change = Change::try_from(c).map_err(|e| StateFileError::Undecodable {
                offset: at,
                reason: e.to_string(),
            })?;
            if change.is_removal() {
                return Err(StateFileError::Undecodable {
                    offset: at,
                    reason: "a removal where objects belong".into(),
                });
            }
            Ok(change)
        })
        .collect()
}

/// Fills `buf` from `input`; `Ok(false)` at the end of input before the first byte,
/// [`StateFileError::Truncated`] at the end of input after it.
fn fill(
    input: &mut impl Read,
    buf: &mut [u8],
    offset: u64,
    what: &'static str,
) -> Result<bool, StateFileError> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(StateFileError::Truncated { offset, what }),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(StateFileError::Io {
                    offset: offset + got as u64,
                    source,
                });
            }
        }
    }
    Ok(true)
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().expect("4 bytes"))
}

fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

impl<R: Read> StateFileReader<R> {
    /// Reads and checks the header from `input`.
    pub fn new(mut input: R) -> Result<Self, StateFileError> {
        let mut h = [0; HEADER_LEN];
        let truncated = StateFileError::Truncated {
            offset: 0,
            what: "the header",
        };
        // An old file's magic and version come first: name its format even when shorter than
        // a new header.
        if !fill(&mut input, &mut h[..12], 0, "the header")? {
            return Err(truncated);
        }
        if &h[..8] == OLD_MAGIC {
            return Err(StateFileError::OlderFormat {
                version: le32(&h[8..12]),
            });
        }
        if &h[..8] != MAGIC {
            return Err(StateFileError::BadMagic);
        }
        let version = le32(&h[8..12]);
        if version != FORMAT_VERSION {
            return Err(StateFileError::UnsupportedVersion { version });
        }
        if !fill(&mut input, &mut h[12..], 12, "the header")? {
            return Err(truncated);
        }
        if crc32fast::hash(&h[..32]) != le32(&h[32..]) {
            return Err(StateFileError::HeaderChecksum);
        }
        Ok(Self {
            input,
            header: Header {
                serial: le64(&h[16..24]) as Serial,
                generation: le64(&h[24..32]),
            },
            offset: HEADER_LEN as u64,
            pending: Vec::new().into_iter(),
            count: 0,
            checksum: crc32fast::Hasher::new(),
            buf: Vec::new(),
            done: false,
        })
    }

    /// The header.
    pub fn header(&self) -> Header {
        self.header
    }

    /// Reads the next chunk and checks it (not decoded), or the trailer's first bytes.
    fn read_raw(&mut self) -> Result<Raw, StateFileError> {
        let at = self.offset;
        let mut head = [0; CHUNK_HEADER_LEN];
        if !fill(&mut self.input, &mut head, at, "a chunk header")? {
            return Err(StateFileError::Truncated {
                offset: at,
                what: "the chunks (no trailer)",
            });
        }
        let len = le32(&head[..4]) as usize;
        if len == 0 {
            return Ok(Raw::End { at, head });
        }
        if len > MAX_CHUNK {
            return Err(StateFileError::ChunkLength {
                offset: at,
                len: len as u64,
            });
        }
        let mut body = std::mem::take(&mut self.buf);
        body.resize(len, 0);
        let body_at = at + CHUNK_HEADER_LEN as u64;
        if !fill(&mut self.input, &mut body, body_at, "a chunk")? {
            return Err(StateFileError::Truncated {
                offset: body_at,
                what: "a chunk",
            });
        }
        if crc32fast::hash(&body) != le32(&head[4..]) {
            return Err(StateFileError::ChunkChecksum { offset: at });
        }
        self.checksum.update(&head);
        self.checksum.update(&body);
        self.offset = body_at + len as u64;
        Ok(Raw::Chunk { at, body })
    }

    /// Reads the next chunk into `pending`, or checks the trailer (`Ok(false)`).
    fn next_chunk(&mut self) -> Result<bool, StateFileError> {
        match self.read_raw()? {
            Raw::End { at, head } => self.trailer(at, head).map(|()| false),
            Raw::Chunk { at, body } => {
                let objects = decode_chunk(at, &body, Detail::Full);
                // The buffer serves the next chunk.
                self.buf = body;
                let objects = objects?.objects;
                self.count += objects.len() as u64;
                self.pending = objects.into_iter();
                Ok(true)
            }
        }
    }

    fn trailer(&mut self, at: u64, head: [u8; CHUNK_HEADER_LEN]) -> Result<(), StateFileError> {
        let mut t = [0; TRAILER_LEN];
        t[..CHUNK_HEADER_LEN].copy_from_slice(&head);
        let rest_at = at + CHUNK_HEADER_LEN as u64;
        if !fill(
            &mut self.input,
            &mut t[CHUNK_HEADER_LEN..],
            rest_at,
            "the trailer",
        )? {
            return Err(StateFileError::Truncated {
                offset: rest_at,
                what: "the trailer",
            });
        }
        let announced = le64(&t[4..12]);
        if announced != self.count {
            return Err(StateFileError::Count {
                offset: at,
                announced,
                found: self.count,
            });
        }
        if self.checksum.clone().finalize() != le32(&t[12..]) {
            return Err(StateFileError::FinalChecksum { offset: at });
        }
        let end = at + TRAILER_LEN as u64;
        if fill(&mut self.input, &mut [0], end, "")? {
            return Err(StateFileError::TrailingBytes { offset: end });
        }
        Ok(())
    }

    fn next_change(&mut self) -> Result<Option<Change>, StateFileError> {
        loop {
            if let Some(c) = self.pending.next() {
                return Ok(Some(c));
            }
            if !self.next_chunk()? {
                return Ok(None);
            }
        }
    }
}

impl<R: Read> Iterator for StateFileReader<R> {
    type Item = Result<Change, StateFileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_change();
        if !matches!(next, Ok(Some(_))) {
            self.done = true;
        }
        next.transpose()
    }
}

/// An object's identity: its kind and its name or handle. Two changes with the same key are
/// states of the same object (a removal included).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKey {
    Zone(Name),
    Domain(Name),
    Host(Name),
    Contact(String),
    Registrar(String),
    Dnssec(crate::dnssec::DnssecRrsetId),
}

impl ObjectKey {
    /// The object `change` is about.
    pub fn of(change: &Change) -> Self {
        match change {
            Change::Zone(z) => Self::Zone(z.name.clone()),
            Change::ZoneRemoved(n) => Self::Zone(n.clone()),
            Change::Domain(d) => Self::Domain(d.name.clone()),
            Change::DomainRemoved(n) => Self::Domain(n.clone()),
            Change::Host(h) => Self::Host(h.name.clone()),
            Change::HostRemoved(n) => Self::Host(n.clone()),
            Change::Contact(c) => Self::Contact(c.handle.clone()),
            Change::ContactRemoved(h) => Self::Contact(h.clone()),
            Change::Registrar(r) => Self::Registrar(r.handle.clone()),
            Change::RegistrarRemoved(h) => Self::Registrar(h.clone()),
            Change::Dnssec(r) => Self::Dnssec(r.id.clone()),
            Change::DnssecRemoved(id) => Self::Dnssec(id.clone()),
        }
    }
}

/// Compaction: writes to `out` the objects of `old` (a state file's stream) with `later`'s
/// changes applied, by object identity — the last change to an object wins, a removal drops it.
///
/// Memory is bounded by `later` (the batch log since the file), never by the registry: the
/// later changes are folded into a map by key, then the old objects stream through, each
/// replaced or dropped if the map has it, and the new objects the map has left go at the end.
/// Nothing is assumed about the order of the old file. Returns the objects written.
pub fn merge<E>(
    old: impl IntoIterator<Item = Result<Change, E>>,
    later: impl IntoIterator<Item = Change>,
    out: &mut StateFileWriter,
) -> Result<u64, MergeError<E>> {
    let mut latest: HashMap<ObjectKey, Change> = HashMap::new();
    // Insertion order of the new keys, so the output does not depend on hashing.
    let mut order = Vec::new();
    for c in later {
        let key = ObjectKey::of(&c);
        if latest.insert(key.clone(), c).is_none() {
            order.push(key);
        }
    }
    for c in old {
        let c = c.map_err(MergeError::Read)?;
        let key = ObjectKey::of(&c);
        let c = latest.remove(&key).unwrap_or(c);
        if !c.is_removal() {
            out.push(&c).map_err(MergeError::Write)?;
        }
    }
    for key in order {
        if let Some(c) = latest.remove(&key)
            && !c.is_removal()
        {
            out.push(&c).map_err(MergeError::Write)?;
        }
    }
    Ok(out.count())
}

/// Why [`merge`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum MergeError<E> {
    #[error("reading the old state file: {0}")]
    Read(E),
    #[error("writing the new state file: {0}")]
    Write(io::Error),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Domain, Host, Registrar, Timestamp};

    fn n(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn host(name: &str, last: u8) -> Change {
        Change::Host(Host {
            name: n(name),
            addresses: vec![std::net::Ipv4Addr::new(192, 0, 2, last).into()],
            registrar: None,
            created: Timestamp(1),
            updated: Timestamp(2),
        })
    }

    fn domain(name: &str, ns: &str) -> Change {
        Change::Domain(Domain {
            name: n(name),
            zone: n("tld"),
            roid: format!("{name}-ROID"),
            registrar: "R1".into(),
            created: Timestamp(1),
            updated: Timestamp(2),
            expires: Timestamp(3),
            statuses: vec![],
            registrant: Some("C1".into()),
            admin: None,
            tech: None,
            billing: None,
            nameservers: vec![n(ns)],
            ds: vec![],
        })
    }

    fn registrar(handle: &str) -> Change {
        Change::Registrar(Registrar {
            handle: handle.into(),
            name: "One".into(),
            iana_id: Some(9999),
            url: None,
            whois_server: None,
            email: None,
            phone: None,
            abuse_email: None,
            abuse_phone: None,
        })
    }

    /// Enough objects for several chunks.
    fn objects(count: usize) -> Vec<Change> {
        let mut v = vec![registrar("R1")];
        for i in 0..count {
            v.push(host(&format!("ns.d{i}.tld"), (i % 250) as u8));
            v.push(domain(&format!("d{i}.tld"), &format!("ns.d{i}.tld")));
        }
        v
    }

    /// A contact with some fields set (the direct decoder's tests use it too).
    pub(super) fn contact(handle: &str) -> Change {
        Change::Contact(crate::model::Contact {
            handle: handle.into(),
            name: "A Person".into(),
            organisation: None,
            street: vec!["1 Street".into()],
            city: "Town".into(),
            province: None,
            postcode: Some("1234".into()),
            country: "NL".into(),
            email: "a@example.org".into(),
            voice: None,
            fax: None,
            disclose: false,
            created: Timestamp(1),
            updated: Timestamp(2),
        })
    }

    const HEADER: Header = Header {
        serial: 42,
        generation: 7,
    };

    /// The offset of each chunk and of the trailer, walking the records.
    fn boundaries(bytes: &[u8]) -> Vec<usize> {
        let mut at = HEADER_LEN;
        let mut v = vec![at];
        loop {
            let len = le32(&bytes[at..at + 4]) as usize;
            if len == 0 {
                return v;
            }
            at += CHUNK_HEADER_LEN + len;
            v.push(at);
        }
    }

    /// What the streaming reader makes of `bytes`; the whole-file reader, which decodes the
    /// chunks on every core, must say exactly the same.
    fn read_bytes(bytes: &[u8]) -> Result<(Header, Vec<Change>), StateFileError> {
        let streamed = (|| {
            let r = StateFileReader::new(bytes)?;
            let h = r.header();
            Ok((h, r.collect::<Result<_, _>>()?))
        })();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        std::fs::write(&path, bytes).unwrap();
        let whole = read_state_file(&path);
        assert_eq!(format!("{whole:?}"), format!("{streamed:?}"));
        // A DNS-only read refuses what the others refuse, with the same error, and otherwise
        // keeps what it should of the same objects.
        let dns = read_objects(&path, Detail::Dns).map(|(h, o)| (h, o.into_vec()));
        let kept = whole.as_ref().map(|(h, all)| {
            (
                *h,
                all.iter()
                    .cloned()
                    .filter_map(|c| Detail::Dns.keep(c))
                    .collect::<Vec<_>>(),
            )
        });
        assert_eq!(format!("{dns:?}"), format!("{kept:?}"));
        streamed
    }

    #[test]
    fn round_trips_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let objs = objects(12_000);
        assert_eq!(
            write_state_file(&path, HEADER, &objs).unwrap(),
            objs.len() as u64
        );
        let (h, back) = read_state_file(&path).unwrap();
        assert_eq!((h, back.len()), (HEADER, objs.len()));
        assert_eq!(back, objs);
        let bytes = std::fs::read(&path).unwrap();
        assert!(boundaries(&bytes).len() > 2, "several chunks");
        // Read as chunks, the objects stay in the file's chunks, in order, none copied.
        let (_, chunked) = read_objects(&path, Detail::Full).unwrap();
        assert_eq!(chunked.chunks().len(), boundaries(&bytes).len() - 1);
        assert_eq!(chunked.len(), objs.len());
        assert!(chunked.iter().eq(objs.iter()));
        assert_eq!(chunked.into_vec(), objs);
        // An empty registry is a header and a trailer.
        write_state_file(&path, Header::default(), &[]).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().len() as usize,
            HEADER_LEN + TRAILER_LEN
        );
        assert_eq!(read_state_file(&path).unwrap(), (Header::default(), vec![]));
        // A removal has no place in it.
        let e = write_state_file(&path, HEADER, &[Change::DomainRemoved(n("a.tld"))]);
        assert_eq!(e.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    /// A DNS-only read over several chunks leaves the contacts out and still checks the
    /// trailer's count, which counts them; a torn or corrupt file is refused as by a whole read.
    #[test]
    fn a_dns_only_read_counts_what_it_leaves_out() {
        let mut objs = objects(12_000);
        for i in 0..30 {
            objs.insert(i * 800, contact(&format!("C{i}")));
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_state_file(&path, HEADER, &objs).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(boundaries(&bytes).len() > 2, "several chunks");
        let (h, kept) = read_objects(&path, Detail::Dns).unwrap();
        assert_eq!(h, HEADER);
        assert_eq!(kept.len(), objs.len() - 30);
        assert!(!kept.iter().any(|c| matches!(c, Change::Contact(_))));
        let want: Vec<Change> = objs
            .iter()
            .cloned()
            .filter_map(|c| Detail::Dns.keep(c))
            .collect();
        assert_eq!(kept.into_vec(), want);
        // The trailer's count is checked against what was read plus what was left out: a file
        // whose trailer counts one object fewer is refused.
        let mut bad = bytes.clone();
        let count_at = bad.len() - 12;
        let count = u64::from_le_bytes(bad[count_at..count_at + 8].try_into().unwrap());
        bad[count_at..count_at + 8].copy_from_slice(&(count - 1).to_le_bytes());
        assert!(matches!(
            read_bytes(&bad),
            Err(StateFileError::Count { .. })
        ));
        // Cut anywhere in the last chunk: refused.
        read_bytes(&bytes).unwrap();
        assert!(read_bytes(&bytes[..bytes.len() - 100]).is_err());
    }

    #[test]
    fn a_torn_file_is_refused_at_every_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_state_file(&path, HEADER, &objects(12_000)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let chunks = boundaries(&bytes);
        let mut cuts: Vec<usize> = (0..HEADER_LEN + 2).collect();
        for &b in &chunks {
            // At the boundary, inside the chunk header, inside the payload.
            cuts.extend([b, b + 3, b + CHUNK_HEADER_LEN, b + CHUNK_HEADER_LEN + 100]);
        }
        cuts.extend((bytes.len() - TRAILER_LEN..bytes.len()).collect::<Vec<_>>());
        for cut in cuts.into_iter().filter(|&c| c < bytes.len()) {
            match read_bytes(&bytes[..cut]) {
                Err(StateFileError::Truncated { offset, .. }) => {
                    assert!(offset as usize <= cut, "cut {cut}: offset {offset}");
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
        // The whole file reads; a byte more is refused too.
        assert!(read_bytes(&bytes).is_ok());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            read_bytes(&longer),
            Err(StateFileError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn corruption_is_refused_with_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        write_state_file(&path, HEADER, &objects(12_000)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let chunks = boundaries(&bytes);
        // A flipped bit in the second chunk's payload.
        let mut bad = bytes.clone();
        bad[chunks[1] + CHUNK_HEADER_LEN + 10] ^= 4;
        match read_bytes(&bad) {
            Err(StateFileError::ChunkChecksum { offset }) => assert_eq!(offset as usize, chunks[1]),
            other => panic!("{other:?}"),
        }
        // In the header.
        let mut bad = bytes.clone();
        bad[17] ^= 1;
        assert!(matches!(
            read_bytes(&bad),
            Err(StateFileError::HeaderChecksum)
        ));
        // A chunk dropped whole (CRCs intact): the trailer catches it.
        let mut dropped = bytes[..chunks[1]].to_vec();
        dropped.extend_from_slice(&bytes[chunks[2]..]);
        assert!(matches!(
            read_bytes(&dropped),
            Err(StateFileError::Count { .. })
        ));
        // Two chunks swapped: same count, the final checksum catches it.
        let mut swapped = bytes[..chunks[0]].to_vec();
        swapped.extend_from_slice(&bytes[chunks[1]..chunks[2]]);
        swapped.extend_from_slice(&bytes[chunks[0]..chunks[1]]);
        swapped.extend_from_slice(&bytes[chunks[2]..]);
        assert!(matches!(
            read_bytes(&swapped),
            Err(StateFileError::FinalChecksum { .. })
        ));
        // A length out of range.
        let mut long = bytes.clone();
        long[chunks[0]..chunks[0] + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            read_bytes(&long),
            Err(StateFileError::ChunkLength { .. })
        ));
        // Not a state file; an older release's.
        assert!(matches!(
            read_bytes(b"hello world, hello"),
            Err(StateFileError::BadMagic)
        ));
        let mut v3 = b"ORRSNAP\0".to_vec();
        v3.extend_from_slice(&3u32.to_le_bytes());
        v3.extend_from_slice(&[0; 40]);
        let e = read_bytes(&v3).unwrap_err();
        assert!(
            matches!(e, StateFileError::OlderFormat { version: 3 }),
            "{e:?}"
        );
        assert!(e.to_string().contains("snapshot from its"), "{e}");
        // An unfinished file (writer killed: placeholder header) is never taken.
        assert!(matches!(
            read_bytes(&[0; 64]),
            Err(StateFileError::BadMagic)
        ));
    }

    #[test]
    fn merge_applies_later_changes_by_identity() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (dir.path().join("old"), dir.path().join("new"));
        let base = objects(3);
        write_state_file(&old, HEADER, &base).unwrap();
        let later = vec![
            domain("d0.tld", "ns.elsewhere"),
            Change::DomainRemoved(n("d1.tld")),
            Change::HostRemoved(n("ns.d1.tld")),
            domain("new.tld", "ns.d2.tld"),
            domain("new.tld", "ns.d0.tld"),
            domain("gone.tld", "ns.d0.tld"),
            Change::DomainRemoved(n("gone.tld")),
            Change::ZoneRemoved(n("never.tld")),
        ];
        let mut out = StateFileWriter::create(&new).unwrap();
        let written = merge(open(&old).unwrap(), later, &mut out).unwrap();
        out.finish(Header {
            serial: 50,
            ..HEADER
        })
        .unwrap();
        let (h, got) = read_state_file(&new).unwrap();
        assert_eq!((h.serial, h.generation, written), (50, 7, 6));
        let want = vec![
            registrar("R1"),
            host("ns.d0.tld", 0),
            domain("d0.tld", "ns.elsewhere"),
            host("ns.d2.tld", 2),
            domain("d2.tld", "ns.d2.tld"),
            domain("new.tld", "ns.d0.tld"),
        ];
        assert_eq!(got, want);
    }
}
