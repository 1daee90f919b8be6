//! What rusqlite does not wrap: one SQLite file control.

use std::ffi::c_int;

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
