//! A disk that fills up during an export: the export fails with an error that names the disk,
//! the file exported there before is intact, and no partial file is left behind. A real tmpfs
//! of a few MiB is mounted in a private mount namespace (`unshare -m`, with `-r` when not root)
//! and filled to the brim before the second export.

use std::path::Path;
use std::process::Command;

mod common;

/// Run `script` (bash) in a private mount namespace with `$BIN`, `$SRC` and `$D` set.
fn in_namespace(script: &str, src: &Path, d: &Path) -> std::process::Output {
    let root = running_as_root();
    let mut cmd = Command::new("unshare");
    if !root {
        cmd.arg("-r");
    }
    cmd.args(["-m", "bash", "-c", script])
        .env("BIN", env!("CARGO_BIN_EXE_synthscope"))
        .env("SRC", src)
        .env("D", d);
    cmd.output().expect("unshare (util-linux) runs")
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

#[test]
fn a_full_disk_during_an_export_keeps_the_earlier_file_and_names_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let ph = dir.path().join("ph");
    common::run_ok(
        common::synthscope()
            .args(["phantom", "--small", "--out"])
            .arg(&ph),
    );
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    // First export of the CT fits; then the disk is filled; then the MR over the same name.
    let script = r#"
set -u
mount -t tmpfs -o size=6m tmpfs "$D" || { echo "MOUNT FAILED"; exit 90; }
"$BIN" convert "$SRC/ct" "$D/export.nii" >/dev/null 2>&1 || { echo "FIRST EXPORT FAILED"; exit 91; }
before=$(sha256sum "$D/export.nii" | cut -d' ' -f1)
cat /dev/zero > "$D/filler" 2>/dev/null
"$BIN" convert "$SRC/mr_t1" "$D/export.nii" 2>"$D/../stderr.txt" >/dev/null
echo "STATUS $?"
after=$(sha256sum "$D/export.nii" | cut -d' ' -f1)
[ "$before" = "$after" ] && echo "INTACT" || echo "CHANGED"
echo "FILES $(ls -A "$D" | tr '\n' ' ')"
"#;
    let out = in_namespace(script, &ph, &mnt);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = std::fs::read_to_string(dir.path().join("stderr.txt")).unwrap_or_default();
    assert!(
        !stdout.contains("MOUNT FAILED"),
        "cannot mount a tmpfs here (needs root or user namespaces): {stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stdout.contains("FIRST EXPORT FAILED"), "{stdout}");
    assert!(
        stdout.contains("STATUS ") && !stdout.contains("STATUS 0"),
        "the export into a full disk must fail: {stdout}"
    );
    assert!(
        stdout.contains("INTACT"),
        "the earlier export must be intact: {stdout}"
    );
    let files = stdout.lines().find(|l| l.starts_with("FILES")).unwrap();
    assert_eq!(
        files.split_whitespace().collect::<Vec<_>>(),
        ["FILES", "export.nii", "filler"],
        "no partial file may be left: {files}"
    );
    let msg = stderr.trim();
    assert_eq!(msg.lines().count(), 1, "one line: {msg}");
    assert!(msg.contains("export.nii"), "names the file: {msg}");
    assert!(
        msg.contains("is full") && msg.contains(&*mnt.to_string_lossy()),
        "names the disk: {msg}"
    );
}
