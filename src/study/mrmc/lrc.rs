//! The LABMRMC / OR-DBM MRMC text format (`.lrc`): a title line; then per reader its name
//! (the first reader also a line of modality names and a line of `L`/`S` per modality: larger
//! or smaller ratings mean abnormal), its normal cases as one line each of
//! `rating-per-modality ... [case]`, `*`, its abnormal cases likewise, `*`; `#` ends the file.

use crate::study::roc::Ratings;
use std::path::Path;

/// An `.lrc` file that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum LrcError {
    /// The file cannot be read.
    #[error("{}: cannot read: {cause}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// A line that is not what the format holds there.
    #[error("{}: line {line}: {problem}", path.display())]
    Line {
        /// The file.
        path: std::path::PathBuf,
        /// 1-based.
        line: usize,
        /// What is wrong.
        problem: String,
    },
}

/// Read an `.lrc` file into a rating table (ratings negated for `S` modalities, so larger
/// always means abnormal). Cases are numbered by their order: normal ones first.
pub fn read_lrc(path: &Path) -> Result<Ratings, LrcError> {
    let text = std::fs::read_to_string(path).map_err(|cause| LrcError::Io {
        path: path.to_path_buf(),
        cause,
    })?;
    parse_lrc(&text).map_err(|(line, problem)| LrcError::Line {
        path: path.to_path_buf(),
        line,
        problem,
    })
}

/// Parse `.lrc` text; Err((line, problem)).
pub fn parse_lrc(text: &str) -> Result<Ratings, (usize, String)> {
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    let mut at = 1; // after the title
    let next = |at: &mut usize| -> Result<(usize, &str), (usize, String)> {
        let l = lines.get(*at).copied().ok_or((
            lines.last().map_or(1, |l| l.0),
            "the file ends early (no `#`)".to_string(),
        ))?;
        *at += 1;
        Ok(l)
    };
    let unquote = |s: &str| s.trim_matches('"').to_string();
    let mut readers = Vec::new();
    let mut modalities: Vec<String> = Vec::new();
    let mut larger: Vec<bool> = Vec::new();
    // scores[m][r][k]
    let mut scores: Vec<Vec<Vec<f64>>> = Vec::new();
    let mut abnormal: Vec<bool> = Vec::new();
    loop {
        let (ln, name) = next(&mut at)?;
        if name == "#" {
            break;
        }
        readers.push(unquote(name));
        if modalities.is_empty() {
            let (_, m) = next(&mut at)?;
            modalities = m.split_whitespace().map(unquote).collect();
            let (ln2, ls) = next(&mut at)?;
            larger = ls
                .split_whitespace()
                .map(|s| match s {
                    "L" | "l" => Ok(true),
                    "S" | "s" => Ok(false),
                    o => Err((ln2, format!("expected L or S per modality, found {o:?}"))),
                })
                .collect::<Result<_, _>>()?;
            if modalities.is_empty() || larger.len() != modalities.len() {
                return Err((
                    ln2,
                    format!(
                        "{} modality names but {} L/S flags",
                        modalities.len(),
                        larger.len()
                    ),
                ));
            }
            scores = vec![Vec::new(); modalities.len()];
        }
        for s in scores.iter_mut() {
            s.push(Vec::new());
        }
        let mut truth = Vec::new();
        for is_abnormal in [false, true] {
            loop {
                let (ln3, l) = next(&mut at)?;
                if l == "*" {
                    break;
                }
                let v: Vec<&str> = l.split_whitespace().collect();
                if v.len() < modalities.len() {
                    return Err((
                        ln3,
                        format!(
                            "{} ratings, expected one per modality ({})",
                            v.len(),
                            modalities.len()
                        ),
                    ));
                }
                for (m, s) in v.iter().take(modalities.len()).enumerate() {
                    let x: f64 = s
                        .parse()
                        .map_err(|_| (ln3, format!("rating {s:?} is not a number")))?;
                    let row = scores[m].last_mut().ok_or((ln3, "no reader".to_string()))?;
                    row.push(if larger[m] { x } else { -x });
                }
                truth.push(is_abnormal);
            }
        }
        if abnormal.is_empty() {
            abnormal = truth;
        } else if abnormal != truth {
            return Err((
                ln,
                format!(
                    "reader {name}: other numbers of normal/abnormal cases than the first reader (the table must be fully crossed)"
                ),
            ));
        }
    }
    let cases = (0..abnormal.len()).map(|k| format!("{k}")).collect();
    let r = Ratings {
        modalities,
        readers,
        cases,
        abnormal,
        scores,
    };
    r.check(1, 1).map_err(|e| (1, e.to_string()))?;
    Ok(r)
}
