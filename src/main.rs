//! The `synthscope` binary: thin; everything lives in the library.

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    // Headless machines (CI, ssh) often lack XDG_RUNTIME_DIR; the Wayland client library then
    // prints an error line for every GPU instance it probes. Give it a private one.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join("synthscope-runtime");
        if std::fs::create_dir_all(&dir).is_ok() {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
            }
            // SAFETY: set before any other thread exists.
            unsafe { std::env::set_var("XDG_RUNTIME_DIR", &dir) };
        }
    }
    if let Err(e) = synthscope::cli::main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
