//! What each benchmark measured, kept as JSON records beside what it prints, so `bench all
//! --json` can write every figure of one run in one file.

use serde_json::{Value, json};
use std::sync::Mutex;

static RECORDS: Mutex<Vec<Value>> = Mutex::new(Vec::new());

/// Keep one measurement of `bench` (its fields an object).
pub(crate) fn record(bench: &str, fields: Value) {
    let mut v = json!({ "bench": bench });
    if let (Some(o), Value::Object(f)) = (v.as_object_mut(), fields) {
        o.extend(f);
    }
    RECORDS.lock().unwrap_or_else(|e| e.into_inner()).push(v);
}

/// Everything kept so far, emptied.
pub(super) fn take() -> Vec<Value> {
    std::mem::take(&mut *RECORDS.lock().unwrap_or_else(|e| e.into_inner()))
}
