//! How every hako database connection is opened, and what rusqlite does not wrap: one
//! SQLite file control.

use std::ffi::c_int;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

/// Opens a store database as every hako process must, so that many processes share it: its
/// `-wal` and `-shm` kept ([`persist_wal`], before the first statement), a 30 s busy
/// wait in short steps (another connection's write transaction waits, never fails:
/// [`wait_when_busy`]), WAL journal,
/// `synchronous = NORMAL`, foreign keys on; what a close does with the `-wal` is
/// [`close_mode`]'s choice for the database's filesystem.
pub fn open_shared(path: &Path) -> Result<Connection, rusqlite::Error> {
    open_with(path, close_mode(path))
}

/// What the close of a process's last connection does with the `-wal`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseMode {
    /// SQLite's default: the last connection to close copies the `-wal` into the database
    /// and (the WAL being persisted, with a [`WAL_KEEP`] limit) truncates it to 0 bytes.
    Checkpoint,
    /// No checkpoint at close (`SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE`); an open checkpoints and
    /// empties the `-wal` once it has grown past [`CHECKPOINT_AT`].
    ///
    /// Why: every hako command is a process of its own, and the close's checkpoint plus
    /// the next process's first write (a new `-wal` header) cost five fsyncs, ~1 ms each on
    /// a journaled ext4: a fifth of a `run --rm` (perf timelines, bench/README). Left in
    /// the `-wal`, a command's few pages cost the next process only their reading when it
    /// rebuilds the wal-index; every few dozen commands one of them copies them into the
    /// database. A committed transaction survives any process crash as before; a power loss
    /// may lose the last ones (never the database's consistency): `synchronous = NORMAL`'s
    /// bargain, in SQLite's words the right one for WAL.
    Keep,
}

/// [`CloseMode::Keep`] where the database's filesystem cannot make a reader die of SIGBUS
/// on a full disk, else [`CloseMode::Checkpoint`].
///
/// The hazard: the first process to open the database truncates the `-shm` (the
/// wal-index, which SQLite maps) to 3 bytes, extends it again by writing one byte at the
/// end of each 4 KiB page, and writes the index through the mapping, rebuilt from the
/// `-wal`. Where a block is smaller than a page (ext4 makes filesystems under 512 MiB with
/// 1 KiB blocks) that byte allocates one block of four: a store to the others needs a
/// block at fault time, and on a full disk the kernel answers SIGBUS. An empty `-wal` (the
/// checkpoint at close) leaves only the header to write, in the first block, which the
/// truncation keeps; a kept `-wal` spreads hash entries over the page. Seen as `hako logs`
/// killed by SIGBUS while a container's log filled a 32 MiB store
/// (`full_disk::a_container_whose_log_fills_the_disk_keeps_running`). So `Keep` only on
/// ext4, XFS and tmpfs (no copy on write: an allocated block is written in place) with
/// blocks at least a page large; a statfs that fails also means `Checkpoint`.
pub fn close_mode(path: &Path) -> CloseMode {
    use nix::sys::statfs::{EXT4_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC};
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(fs) = nix::sys::statfs::statfs(dir) else {
        return CloseMode::Checkpoint;
    };
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096);
    let in_place = [EXT4_SUPER_MAGIC, XFS_SUPER_MAGIC, TMPFS_MAGIC].contains(&fs.filesystem_type());
    // `block_size` is the filesystem's own block (statfs's f_bsize), e.g. 1024 on a small ext4.
    if in_place && fs.block_size() >= page {
        CloseMode::Keep
    } else {
        CloseMode::Checkpoint
    }
}

/// [`open_shared`] with the close mode chosen by the caller (tests of either mode).
pub fn open_with(path: &Path, mode: CloseMode) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    persist_wal(&conn)?;
    if mode == CloseMode::Keep {
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
            true,
        )?;
    }
    wait_when_busy(&conn)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    set_wal(&conn)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "journal_size_limit", WAL_KEEP)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    if mode == CloseMode::Keep {
        checkpoint_if_large(&conn, path)?;
    }
    Ok(conn)
}

/// Statements each connection keeps parsed ([`Cached`]): more than the stores' hot ones.
const STATEMENT_CACHE: usize = 96;

/// `execute` and `query_row` through the connection's statement cache: the SQL text is
/// parsed once per connection, not at every call. SQLite's parser was ~0.8 ms of `hako
/// serve`'s CPU per `docker run --rm` (a `perf` profile of 40), all of it on the way to the
/// answer.
pub trait Cached {
    /// [`Connection::execute`], the statement cached.
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;

    /// [`Connection::query_row`], the statement cached.
    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn execute_cached<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn query_row_cached<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// How long a statement waits for another connection's lock before "database is locked".
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Another connection's lock is waited for in short steps, for [`BUSY_TIMEOUT`] in all
/// ([`busy_step`]). SQLite's own busy timeout sleeps 1, 2, 5, 10, 15, 20, 25... ms between
/// tries, 100 ms at length: two writers that meet (a removal's network and root-filesystem
/// threads, two commands at once) lost 10-30 ms to it where the other's transaction held the
/// lock for well under one (measured in `hako serve`'s debug log of `docker run --rm`).
pub fn wait_when_busy(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.busy_handler(Some(busy_step))
}

/// SQLite's busy handler: sleeps [`busy_schedule`]'s step, or gives up (false).
fn busy_step(tries: c_int) -> bool {
    match busy_schedule(u64::try_from(tries).unwrap_or(0)) {
        Some(step) => {
            std::thread::sleep(step);
            true
        }
        None => false,
    }
}

/// The sleep before try `n + 1`: 50 µs doubling to 800, then 1 ms each; `None` once the
/// sleeps before it add up to [`BUSY_TIMEOUT`].
fn busy_schedule(n: u64) -> Option<Duration> {
    let (slept_us, step_us) = if n < 5 {
        (50 * ((1 << n) - 1), 50 << n)
    } else {
        (1550 + (n - 5) * 1000, 1000)
    };
    (Duration::from_micros(slept_us) < BUSY_TIMEOUT).then(|| Duration::from_micros(step_us))
}

/// `PRAGMA journal_mode = WAL`. Turning a new database (SQLite makes it in rollback mode)
/// into WAL needs it to itself, and SQLite answers "database is locked" at once, without the
/// busy timeout, while another connection reads it: several hako commands started at once
/// on a new store did that. Retried for the busy timeout's 30 s; a database already in WAL
/// mode answers at once.
fn set_wal(conn: &Connection) -> Result<(), rusqlite::Error> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(2));
            }
            other => return other,
        }
    }
}

/// The `-wal` size past which [`open_shared`] checkpoints: a process that opens the
/// database first rebuilds its wal-index from the whole `-wal` (reads it), so it is kept
/// small; a `run --rm` adds ~100 KiB.
pub const CHECKPOINT_AT: u64 = 512 << 10;

/// Copies the `-wal` into the database and truncates it to 0 bytes when it is over
/// [`CHECKPOINT_AT`] (`wal_checkpoint(TRUNCATE)`), without waiting: with another process
/// in a transaction it is left to the next opener.
///
/// TRUNCATE, not PASSIVE: a `-wal` whose frames were copied but which still holds them is
/// copied again by the next process (a new wal-index counts every frame as not copied).
fn checkpoint_if_large(conn: &Connection, path: &Path) -> Result<(), rusqlite::Error> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    if std::fs::metadata(&wal).map_or(0, |m| m.len()) <= CHECKPOINT_AT {
        return Ok(());
    }
    conn.busy_timeout(Duration::ZERO)?;
    let res = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    wait_when_busy(conn)?;
    match res {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            Ok(())
        }
        other => other,
    }
}

/// `PRAGMA journal_size_limit` of every connection: when the `-wal` starts over (after a
/// checkpoint at a [`CloseMode::Checkpoint`] close, or a long-lived process's automatic
/// one every 1000 pages) it is truncated to this size, and to 0 bytes at a checkpointing
/// close (SQLite does that whenever a limit is set).
///
/// Why empty it there: a persisted `-wal` that still holds checkpointed frames is
/// checkpointed again by every later command. The first process to open the database
/// starts a new `-shm` (the wal-index), so SQLite recovers the index from the `-wal` as if
/// nothing of it had been copied into the database. What the kept `-wal`'s blocks gave a
/// full disk (room for writes) is the reserve's job (`hako-image` `reserve.rs`: removals
/// free it first); reads need only the `-shm`, which stays.
pub const WAL_KEEP: i64 = 1 << 20;

/// Gives back what an idle connection holds: its page cache (`PRAGMA shrink_memory`) and
/// its prepared statements. A long-lived server calls it when idle; the next query reads
/// the few pages it needs again.
pub fn release_memory(conn: &Connection) {
    let _ = conn.execute_batch("PRAGMA shrink_memory");
    conn.flush_prepared_statement_cache();
}

/// Whether the database has a table of this name (a schema made before is not made again).
pub fn has_table(conn: &Connection, name: &str) -> Result<bool, rusqlite::Error> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Keeps a WAL database's `-wal` and `-shm` files when the last connection closes
/// (`SQLITE_FCNTL_PERSIST_WAL`). Without it, every hako command (each opens the store anew)
/// recreates and grows the `-shm` file, which fails on a full disk ("disk I/O error ... xShmMap")
/// before a single row is read: `hako images`, `ps`, `rm` and `system check` could not run
/// to free space. Kept, the `-shm` holds its blocks and reads work on a full disk (the `-wal`
/// is emptied at the last close: [`WAL_KEEP`]).
pub fn persist_wal(conn: &rusqlite::Connection) -> Result<(), rusqlite::Error> {
    let mut on: c_int = 1;
    // SAFETY: the handle is the open connection's own `sqlite3*`, used only for the call
    // below while `conn` is borrowed; no other rusqlite call runs on it meanwhile.
    let db = unsafe { conn.handle() };
    // SAFETY: `db` is a live connection; "main" is a NUL-terminated name of its main
    // database; PERSIST_WAL reads and writes one `int` through the pointer, which points
    // at `on` on this stack frame for the whole call.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            db,
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&raw mut on).cast(),
        )
    };
    if rc == rusqlite::ffi::SQLITE_OK {
        Ok(())
    } else {
        Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rc),
            Some("set SQLITE_FCNTL_PERSIST_WAL".into()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_wait_steps_are_short_and_end_at_the_timeout() {
        let us = |n| busy_schedule(n).map(|d| d.as_micros());
        assert_eq!(
            (0..7).map(us).collect::<Vec<_>>(),
            [50, 100, 200, 400, 800, 1000, 1000].map(Some)
        );
        let steps: Vec<Duration> = (0..).map_while(busy_schedule).collect();
        let total: Duration = steps.iter().sum();
        assert!(total >= BUSY_TIMEOUT && total <= BUSY_TIMEOUT + Duration::from_millis(1));
    }

    /// A write that meets another connection's short write transaction goes on right after
    /// it: here 20 ms, where SQLite's own busy timeout wakes after 1 + 2 + 5 + 10 + 15 = 33 ms.
    #[test]
    fn a_writer_waits_no_longer_than_the_other_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let a = open_shared(&db).unwrap();
        a.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        let mut b = open_shared(&db).unwrap();
        let mut waits = Vec::new();
        for _ in 0..10 {
            a.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1)")
                .unwrap();
            let writer = std::thread::spawn(move || {
                let t0 = std::time::Instant::now();
                b.execute("INSERT INTO t VALUES (2)", []).unwrap();
                (t0.elapsed(), b)
            });
            std::thread::sleep(Duration::from_millis(20));
            a.execute_batch("COMMIT").unwrap();
            let (waited, back) = writer.join().unwrap();
            waits.push(waited);
            b = back;
        }
        waits.sort();
        // The median wait: the 20 ms the lock was held, plus a step or two.
        assert!(waits[5] < Duration::from_millis(28), "{waits:?}");
    }

    fn wal_len(db: &Path) -> u64 {
        std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len())
    }

    /// A database with a table `t` of 4 KiB blobs, written until its `-wal` is past
    /// [`CHECKPOINT_AT`]; the connection that wrote them, still open.
    fn with_large_wal(db: &Path) -> Connection {
        let a = open_with(db, CloseMode::Keep).unwrap();
        a.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        let blob = vec![7u8; 4096];
        while wal_len(db) <= CHECKPOINT_AT {
            a.execute("INSERT INTO t VALUES (?1)", [&blob]).unwrap();
        }
        a
    }

    /// A connection opened in `mode` that only reads (three rows of `t`) changes no byte and
    /// no time of the database file.
    fn a_reader_writes_nothing(db: &Path, mode: CloseMode) {
        let before = std::fs::metadata(db).unwrap().modified().unwrap();
        let bytes = std::fs::read(db).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let r = open_with(db, mode).unwrap();
        let n: i64 = r
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
        drop(r);
        assert_eq!(std::fs::metadata(db).unwrap().modified().unwrap(), before);
        assert_eq!(std::fs::read(db).unwrap(), bytes);
    }

    #[test]
    fn a_close_leaves_the_wal_and_a_reader_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let a = open_with(&db, CloseMode::Keep).unwrap();
        a.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);")
            .unwrap();
        let b = open_with(&db, CloseMode::Keep).unwrap();
        b.execute("INSERT INTO t VALUES (3)", []).unwrap();
        drop(b);
        drop(a);
        let wal = wal_len(&db);
        assert!(wal > 0, "the last close checkpointed");
        let shm = db.with_extension("db-shm");
        assert!(shm.exists(), "the -shm is kept (persist_wal)");
        // A process that only reads changes no byte and no time of the database, nor the
        // -wal: it rebuilds the wal-index from the -wal and finds every row.
        a_reader_writes_nothing(&db, CloseMode::Keep);
        assert_eq!(wal_len(&db), wal);
    }

    #[test]
    fn an_open_checkpoints_a_large_wal_and_empties_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let a = with_large_wal(&db);
        let rows: i64 = a
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        drop(a);
        assert!(wal_len(&db) > CHECKPOINT_AT, "the close checkpointed");
        let b = open_with(&db, CloseMode::Keep).unwrap();
        assert_eq!(wal_len(&db), 0, "the open did not empty the -wal");
        drop(b);
        // Everything is in the database file itself now.
        let c =
            Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, rows);
    }

    #[test]
    fn a_busy_database_is_checkpointed_by_a_later_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let a = with_large_wal(&db);
        // A reader in an old snapshot holds the -wal: the open neither waits nor fails.
        a.execute_batch("BEGIN; SELECT COUNT(*) FROM t;").unwrap();
        let w = open_with(&db, CloseMode::Keep).unwrap();
        w.execute("INSERT INTO t VALUES (?1)", [&[7u8; 4096][..]])
            .unwrap();
        let start = std::time::Instant::now();
        let b = open_with(&db, CloseMode::Keep).unwrap();
        assert!(start.elapsed() < Duration::from_secs(5), "the open waited");
        assert!(wal_len(&db) > 0);
        a.execute_batch("COMMIT").unwrap();
        drop((a, b, w));
        let c = open_with(&db, CloseMode::Keep).unwrap();
        assert_eq!(wal_len(&db), 0);
        drop(c);
    }

    #[test]
    fn a_checkpointing_close_empties_the_wal_and_a_reader_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let open = || open_with(&db, CloseMode::Checkpoint).unwrap();
        let a = open();
        a.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);")
            .unwrap();
        let b = open();
        b.execute("INSERT INTO t VALUES (3)", []).unwrap();
        drop(b);
        assert!(
            wal_len(&db) > 0,
            "another connection was open: nothing checkpointed"
        );
        drop(a);
        assert_eq!(wal_len(&db), 0, "the last close left the -wal");
        assert!(
            db.with_extension("db-shm").exists(),
            "the -shm is kept (persist_wal)"
        );
        a_reader_writes_nothing(&db, CloseMode::Checkpoint);
        assert_eq!(wal_len(&db), 0);
    }

    /// The choice per filesystem: a tmpfs (page-sized blocks, written in place) keeps the
    /// `-wal`; a small ext4 with 1 KiB blocks (made on a loop device here, as root) and an
    /// unknown path checkpoint.
    #[test]
    fn close_mode_keeps_the_wal_only_where_pages_are_whole_blocks() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            close_mode(Path::new("/nonexistent/x/t.db")),
            CloseMode::Checkpoint
        );
        if !nix::unistd::geteuid().is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs the tests as root"
            );
            return;
        }
        let on = |opts: &str| {
            let m = dir.path().join(opts.replace([',', '='], "_"));
            std::fs::create_dir(&m).unwrap();
            m
        };
        let tmp = on("tmpfs");
        nix::mount::mount(
            Some("hako-test"),
            &tmp,
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            Some("size=4m"),
        )
        .unwrap();
        let keep = close_mode(&tmp.join("t.db"));
        nix::mount::umount(&tmp).unwrap();
        assert_eq!(keep, CloseMode::Keep);
        for (block, want) in [("1024", CloseMode::Checkpoint), ("4096", CloseMode::Keep)] {
            let img = dir.path().join(format!("fs{block}.img"));
            std::fs::File::create(&img)
                .unwrap()
                .set_len(16 << 20)
                .unwrap();
            let ok = std::process::Command::new("mkfs.ext4")
                .args(["-q", "-F", "-b", block])
                .arg(&img)
                .status()
                .unwrap()
                .success();
            assert!(ok, "mkfs.ext4 -b {block}");
            let m = on(&format!("ext4-{block}"));
            let ok = std::process::Command::new("mount")
                .args(["-o", "loop"])
                .arg(&img)
                .arg(&m)
                .status()
                .unwrap()
                .success();
            assert!(ok, "mount the {block}-byte-block ext4");
            let got = close_mode(&m.join("t.db"));
            nix::mount::umount(&m).unwrap();
            assert_eq!(got, want, "ext4 with {block}-byte blocks");
        }
    }
}
