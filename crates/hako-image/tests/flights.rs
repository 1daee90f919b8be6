//! Flights begun while another process's open probes the flight markers for crashes.

use std::sync::atomic::{AtomicBool, Ordering};

use hako_image::ImageStore;

mod common;

use common::Root;

/// An open probes every marker with a lock taken and dropped at once; a flight whose marker
/// it probes between the marker's creation and its owner's lock must wait for the probe,
/// not fail ("lock flight marker: operation would block", seen with 50 `run -d` at once).
/// The store is new: the eight opens at once also turn it into WAL mode together, which
/// SQLite refuses at once while another connection reads ("database is locked").
#[test]
fn a_flight_begins_while_an_open_probes_its_marker() {
    let root = Root::new("hako-flights");
    let stop = AtomicBool::new(false);
    let results: Vec<Result<(), hako_image::Error>> = std::thread::scope(|s| {
        // flock locks belong to open files: these threads' conflict with each other's as
        // other processes' would. More threads than cores: a thread preempted between
        // making its marker and locking it is what opens the window.
        for _ in 0..4 {
            s.spawn(|| {
                let Ok(other) = ImageStore::open(root.path()) else {
                    return;
                };
                while !stop.load(Ordering::Relaxed) {
                    let _ = other.crashed_flights(&["tst"]);
                }
            });
        }
        let flights: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let store = ImageStore::open(root.path())?;
                    (0..1500).try_for_each(|_| store.begin_flight("tst").map(|f| f.complete()))
                })
            })
            .collect();
        let results = flights
            .into_iter()
            .map(|t| t.join().expect("a flight thread panicked"))
            .collect();
        stop.store(true, Ordering::Relaxed);
        results
    });
    for r in results {
        r.expect("a flight failed to begin");
    }
}
