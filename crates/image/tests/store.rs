//! The blob store on a real filesystem: verified, atomic, nothing left on failure.

use std::io::Read;

use image::{ContentStore, Digest, StoreError};

fn files_in(store_root: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(store_root.join("blobs/sha256"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn blob_is_stored_under_its_digest() {
    let root = tempfile::tempdir().unwrap();
    let store = ContentStore::open(root.path()).unwrap();
    let data = b"layer bytes".repeat(100_000);
    let d = Digest::of(&data);
    let path = store
        .ingest(&d, Some(data.len() as u64), &data[..])
        .unwrap();
    assert_eq!(path, store.path(&d));
    assert!(store.contains(&d));
    let mut back = vec![];
    store.open_blob(&d).unwrap().read_to_end(&mut back).unwrap();
    assert_eq!(back, data);
    assert_eq!(
        files_in(root.path()),
        [d.hex().to_string()],
        "no temp file left"
    );
}

#[test]
fn wrong_content_is_refused_and_nothing_is_stored() {
    let root = tempfile::tempdir().unwrap();
    let store = ContentStore::open(root.path()).unwrap();
    let claimed = Digest::of(b"what the manifest says");
    let e = store
        .ingest(&claimed, None, &b"what the registry sent"[..])
        .unwrap_err();
    assert!(matches!(e, StoreError::DigestMismatch { .. }), "{e}");
    assert!(e.to_string().contains(&claimed.to_string()), "{e}");
    let d = Digest::of(b"abc");
    let e = store.ingest(&d, Some(4), &b"abc"[..]).unwrap_err();
    assert!(
        matches!(
            e,
            StoreError::SizeMismatch {
                expected: 4,
                actual: 3,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        files_in(root.path()).is_empty(),
        "{:?}",
        files_in(root.path())
    );
}

#[test]
fn a_failing_reader_leaves_nothing() {
    struct Broken(usize);
    impl Read for Broken {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0 == 0 {
                return Err(std::io::Error::other("connection reset"));
            }
            self.0 -= 1;
            buf[0] = b'x';
            Ok(1)
        }
    }
    let root = tempfile::tempdir().unwrap();
    let store = ContentStore::open(root.path()).unwrap();
    let e = store
        .ingest(&Digest::of(b"xxxx"), None, Broken(3))
        .unwrap_err();
    assert!(e.to_string().contains("connection reset"), "{e}");
    assert!(files_in(root.path()).is_empty());
}

#[test]
fn concurrent_ingests_of_one_blob_both_succeed() {
    let root = tempfile::tempdir().unwrap();
    let store = ContentStore::open(root.path()).unwrap();
    let data = vec![7u8; 4 << 20];
    let d = Digest::of(&data);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| store.ingest(&d, Some(data.len() as u64), &data[..])))
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
    });
    assert_eq!(files_in(root.path()), [d.hex().to_string()]);
    assert_eq!(
        std::fs::metadata(store.path(&d)).unwrap().len(),
        data.len() as u64
    );
}

#[test]
fn unknown_content_gets_its_digest() {
    let root = tempfile::tempdir().unwrap();
    let store = ContentStore::open(root.path()).unwrap();
    let d = store.ingest_unknown(&b"config json"[..]).unwrap();
    assert_eq!(d, Digest::of(b"config json"));
    assert!(store.contains(&d));
}

#[test]
fn a_writer_resumes_after_an_interrupted_one_and_still_verifies_the_whole_blob() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(dir.path()).unwrap();
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let d = Digest::of(&data);
    let mut w = store.begin(&d, Some(data.len() as u64)).unwrap().unwrap();
    w.write(&data[..40_000]).unwrap();
    drop(w); // interrupted: the partial file stays, nothing is stored
    assert!(!store.contains(&d));
    let mut w = store.begin(&d, Some(data.len() as u64)).unwrap().unwrap();
    assert_eq!(w.offset(), 40_000);
    w.write(&data[40_000..]).unwrap();
    w.commit().unwrap();
    assert_eq!(std::fs::read(store.path(&d)).unwrap(), data);
    assert!(
        store.begin(&d, None).unwrap().is_none(),
        "stored: nothing to write"
    );

    // A partial file that is not a prefix of the blob fails the digest
    // check at the end and is removed, so the next try starts over.
    let other: Vec<u8> = data.iter().map(|b| b ^ 1).collect();
    let o = Digest::of(&other);
    let mut w = store.begin(&o, None).unwrap().unwrap();
    w.write(&data[..10]).unwrap();
    drop(w);
    let mut w = store.begin(&o, None).unwrap().unwrap();
    w.write(&other[10..]).unwrap();
    assert!(matches!(w.commit(), Err(StoreError::DigestMismatch { .. })));
    assert!(!store.contains(&o));
    let w = store.begin(&o, None).unwrap().unwrap();
    assert_eq!(w.offset(), 0, "the bad partial file is gone");
}
