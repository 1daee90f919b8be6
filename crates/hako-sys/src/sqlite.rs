//! How every hako database connection is opened, and what rusqlite does not wrap: one
//! SQLite file control.

use std::ffi::c_int;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

/// Opens a store database as every hako process must, so that many processes share it: its
/// `-wal` and `-shm` kept ([`persist_wal`], before the first statement), a 30 s busy
/// timeout (another process's write transaction waits, never fails), WAL journal,
/// `synchronous = NORMAL`, the `-wal` emptied when the last connection closes
/// ([`WAL_KEEP`]), foreign keys on.
pub fn open_shared(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    persist_wal(&conn)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    set_wal(&conn)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "journal_size_limit", WAL_KEEP)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
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

/// `PRAGMA journal_size_limit` of every connection: the last connection to close a database
/// checkpoints it and, the WAL being persisted, then truncates the `-wal` to 0 bytes (SQLite
/// does that whenever a limit is set); a long-lived process (`hako serve`) keeps at most this
/// much of it between checkpoints.
///
/// Why empty it: a persisted `-wal` that still holds checkpointed frames is checkpointed
/// again by every later command. The first process to open the database starts a new
/// `-shm` (the wal-index), so SQLite recovers the index from the `-wal` as if nothing of it
/// had been copied into the database, and the close copies every frame again with three
/// fsyncs — in `hako images` too, which writes nothing. An empty `-wal` makes a command
/// that writes nothing write nothing. What the kept `-wal`'s blocks gave a full disk (room
/// for writes) is the reserve's job (`hako-image` `reserve.rs`: removals free it first);
/// reads need only the `-shm`, which stays.
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
    fn the_last_close_empties_the_wal_and_a_reader_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("t.db");
        let a = open_shared(&db).unwrap();
        a.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1), (2);")
            .unwrap();
        let b = open_shared(&db).unwrap();
        b.execute("INSERT INTO t VALUES (3)", []).unwrap();
        drop(b);
        assert!(
            wal_len(&db) > 0,
            "another connection was open: nothing checkpointed"
        );
        drop(a);
        assert_eq!(wal_len(&db), 0, "the last close left the -wal");
        let shm = db.with_extension("db-shm");
        assert!(shm.exists(), "the -shm is kept (persist_wal)");
        // A process that only reads changes no byte and no time of the database: nothing
        // of an earlier -wal is copied into it again.
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
        assert_eq!(wal_len(&db), 0);
    }
}
