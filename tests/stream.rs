//! Streamed training data: a folder of phantom patients (written by our NIfTI exporter) is
//! indexed once; the slices read back from the index equal those of the in-memory loader; the
//! index is reused while the folder is unchanged and rebuilt for a patient whose files change;
//! the batches do not depend on the number of reader threads.

use std::path::Path;
use std::sync::Arc;
use synthscope::io::Progress;
use synthscope::io::nifti::write_nifti;
use synthscope::io::phantom::{PhantomConfig, phantom_patient_varied};
use synthscope::model::Direction;
use synthscope::train::data::cases_from_folder;
use synthscope::train::stream::{BatchStream, StreamIndex, StreamSettings, read_slice};

fn write_patients(root: &Path, n: usize) {
    for k in 0..n {
        let d = root.join(format!("p{k}"));
        std::fs::create_dir_all(&d).unwrap();
        let (ct, mr) = phantom_patient_varied(&PhantomConfig::small(), k);
        write_nifti(&ct, &d.join("ct.nii")).unwrap();
        write_nifti(&mr, &d.join("mr.nii.gz")).unwrap();
    }
}

#[test]
fn streamed_slices_equal_the_in_memory_loader_and_the_index_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("patients");
    write_patients(&root, 3);
    let idx_dir = StreamIndex::default_dir(&root);
    let index =
        StreamIndex::open_or_build(&root, &idx_dir, Direction::MrToCt, &Progress::default())
            .unwrap();
    assert_eq!(index.patients.len(), 3);
    let cases = cases_from_folder(&root, Direction::MrToCt, &Progress::default()).unwrap();
    for (p, c) in index.patients.iter().zip(&cases) {
        assert_eq!((p.nx, p.ny, p.nz), (c.nx, c.ny, c.nz));
        assert_eq!(p.slices, c.slices, "{}: head slices", p.name);
        for &z in [p.slices[0], p.slices[p.slices.len() / 2]].iter() {
            let (i, t, m) = read_slice(&index.dir, p, z).unwrap();
            let (ci, ct, cm) = c.slice(z);
            assert_eq!(i, ci, "{} slice {z}: input", p.name);
            assert_eq!(t, ct, "{} slice {z}: target", p.name);
            assert_eq!(m, cm, "{} slice {z}: mask", p.name);
        }
    }

    // Reused: no slice file is rewritten on a second open.
    let mtime = |f: &str| {
        std::fs::metadata(idx_dir.join(f))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before: Vec<_> = index.patients.iter().map(|p| mtime(&p.file)).collect();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again =
        StreamIndex::open_or_build(&root, &idx_dir, Direction::MrToCt, &Progress::default())
            .unwrap();
    let after: Vec<_> = again.patients.iter().map(|p| mtime(&p.file)).collect();
    assert_eq!(before, after, "an unchanged folder reuses its index");
    // A patient whose CT changes is indexed again (and only that one).
    let (ct, _) = phantom_patient_varied(&PhantomConfig::small(), 7);
    write_nifti(&ct, &root.join("p1/ct.nii")).unwrap();
    let third =
        StreamIndex::open_or_build(&root, &idx_dir, Direction::MrToCt, &Progress::default())
            .unwrap();
    let now: Vec<_> = third.patients.iter().map(|p| mtime(&p.file)).collect();
    assert_eq!(now[0], before[0]);
    assert_ne!(now[1], before[1], "the changed patient is indexed again");
    assert_eq!(now[2], before[2]);

    // A damaged slice file is an error naming it, not a panic.
    let f = idx_dir.join(&third.patients[2].file);
    std::fs::write(&f, b"short").unwrap();
    let e = read_slice(&third.dir, &third.patients[2], third.patients[2].slices[0])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&third.patients[2].file) && e.contains("cannot read slice"),
        "{e}"
    );
}

#[test]
fn batches_do_not_depend_on_the_number_of_readers() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("patients");
    write_patients(&root, 2);
    let index = Arc::new(
        StreamIndex::open_or_build(
            &root,
            &StreamIndex::default_dir(&root),
            Direction::CtToMr,
            &Progress::default(),
        )
        .unwrap(),
    );
    let order = Arc::new(index.slice_refs());
    let read = |workers: usize, prefetch: usize| -> Vec<_> {
        let s = StreamSettings {
            batch: 3,
            patch: 32,
            workers,
            prefetch,
            seed: 9,
            ..StreamSettings::default()
        };
        BatchStream::start(index.clone(), order.clone(), 7, s)
            .unwrap()
            .map(|b| b.unwrap())
            .collect()
    };
    let one = read(1, 1);
    let three = read(3, 6);
    assert_eq!(one.len(), 7);
    assert_eq!(one, three);
    assert!(one.iter().all(|b| b.inputs.len() == 3 * 32 * 32));
    assert_ne!(one[0].inputs, one[1].inputs);
    // Dropping a stream early stops its readers (the test would hang otherwise).
    let s = StreamSettings {
        workers: 2,
        prefetch: 2,
        ..StreamSettings::default()
    };
    let mut early = BatchStream::start(index.clone(), order.clone(), 1000, s).unwrap();
    assert!(early.next().unwrap().is_ok());
    drop(early);
}
