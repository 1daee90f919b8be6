//! How every hako database connection is opened, and what rusqlite does not wrap: one
//! SQLite file control.

use std::ffi::c_int;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};

/// Opens a store database as every hako process must, so that many processes share it: its
/// `-wal` and `-shm` kept ([`persist_wal`], before the first statement), a 30 s busy
/// timeout (another process's write transaction waits, never fails), WAL journal,
/// `synchronous = NORMAL`, foreign keys on.
pub fn open_shared(path: &Path) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    persist_wal(&conn)?;
    conn.busy_timeout(Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
}

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
/// to free space. Kept, the files hold their blocks, and reads (and writes up to the WAL's
/// earlier size) work on a full disk.
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
