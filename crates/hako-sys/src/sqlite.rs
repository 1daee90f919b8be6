//! How every hako database connection is opened, and what rusqlite does not wrap: one
//! SQLite file control.

use std::ffi::c_int;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

/// Opens a store database as every hako process must, so that many processes share it: its
/// `-wal` and `-shm` kept ([`persist_wal`], before the first statement), a 30 s busy
/// timeout (another process's write transaction waits, never fails), WAL journal,
/// `synchronous = NORMAL`, no checkpoint when a connection closes, the `-wal` checkpointed
/// and emptied here once it has grown past [`CHECKPOINT_AT`], foreign keys on.
///
/// Why not at close (SQLite's default for the last connection): every hako command is a
/// process of its own, and the checkpoint plus the first write of the next process (a new
/// `-wal` header) cost five fsyncs, ~1 ms each on a journaled ext4: a third of a `run
/// --rm` (perf timelines, bench/README). Left in the `-wal`, a command's few pages cost
/// the next process only their reading when it rebuilds the wal-index; every few dozen
/// commands one of them copies them into the database. A committed transaction survives
/// any process crash as before; a power loss may lose the last ones (never the database's
/// consistency): `synchronous = NORMAL`'s bargain, in SQLite's words the right one for WAL.
pub fn open_shared(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    persist_wal(&conn)?;
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    conn.busy_timeout(Duration::from_secs(30))?;
    set_wal(&conn)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "journal_size_limit", WAL_KEEP)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    checkpoint_if_large(&conn, path)?;
    Ok(conn)
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
    conn.busy_timeout(Duration::from_secs(30))?;
    match res {
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::DatabaseBusy =>
        {
            Ok(())
        }
        other => other,
    }
}

/// `PRAGMA journal_size_limit` of every connection: when a long-lived process (`hako
/// serve`, whose automatic checkpoints copy the `-wal` every 1000 pages) starts the
/// `-wal` over, it truncates it to this size.
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

    fn wal_len(db: &Path) -> u64 {
        std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len())
    }

    #[test]
    fn a_close_leaves_the_wal_and_a_reader_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let a = open_shared(&db).unwrap();
        a.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);")
            .unwrap();
        let b = open_shared(&db).unwrap();
        b.execute("INSERT INTO t VALUES (3)", []).unwrap();
        drop(b);
        drop(a);
        let wal = wal_len(&db);
        assert!(wal > 0, "the last close checkpointed");
        let shm = db.with_extension("db-shm");
        assert!(shm.exists(), "the -shm is kept (persist_wal)");
        // A process that only reads changes no byte and no time of the database, nor the
        // -wal: it rebuilds the wal-index from the -wal and finds every row.
        let before = std::fs::metadata(&db).unwrap().modified().unwrap();
        let bytes = std::fs::read(&db).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let r = open_shared(&db).unwrap();
        let n: i64 = r
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
        drop(r);
        assert_eq!(std::fs::metadata(&db).unwrap().modified().unwrap(), before);
        assert_eq!(std::fs::read(&db).unwrap(), bytes);
        assert_eq!(wal_len(&db), wal);
    }

    /// A database with a table `t` of 4 KiB blobs, written until its `-wal` is past
    /// [`CHECKPOINT_AT`]; the connection that wrote them, still open.
    fn with_large_wal(db: &Path) -> Connection {
        let a = open_shared(db).unwrap();
        a.execute_batch("CREATE TABLE t (x BLOB)").unwrap();
        let blob = vec![7u8; 4096];
        while wal_len(db) <= CHECKPOINT_AT {
            a.execute("INSERT INTO t VALUES (?1)", [&blob]).unwrap();
        }
        a
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
        let b = open_shared(&db).unwrap();
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
        let w = open_shared(&db).unwrap();
        w.execute("INSERT INTO t VALUES (?1)", [&[7u8; 4096][..]])
            .unwrap();
        let start = std::time::Instant::now();
        let b = open_shared(&db).unwrap();
        assert!(start.elapsed() < Duration::from_secs(5), "the open waited");
        assert!(wal_len(&db) > 0);
        a.execute_batch("COMMIT").unwrap();
        drop((a, b, w));
        let c = open_shared(&db).unwrap();
        assert_eq!(wal_len(&db), 0);
        drop(c);
    }
}
