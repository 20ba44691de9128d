//! The `synthscope` binary: thin; everything lives in the library.

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    if let Err(e) = synthscope::cli::main() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
