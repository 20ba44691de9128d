//! Trial order of rating and 2AFC studies: blocks per modality (the modality order
//! counterbalanced over readers) or modalities interleaved with a washout between two readings
//! of the same subject; 2AFC pairs each abnormal image with a normal one of its modality.

use super::{Design, ReadingOrder, Study, Trial, fnv};
use crate::train::data::Rng;

/// Rating/2AFC trials in reader `reader`'s order.
pub(super) fn detection_trials(study: &Study, slices: &[Vec<usize>], reader: &str) -> Vec<Trial> {
    let mut rng = Rng::new(study.reader_seed(reader));
    let modalities = study.modalities();
    let mut by_modality: Vec<Vec<Trial>> = vec![Vec::new(); modalities.len()];
    let m_of = |i: usize| {
        modalities
            .iter()
            .position(|m| m == study.cases[i].modality_name())
            .unwrap_or(0)
    };
    match study.design {
        Design::TwoAfc => {
            for (m, name) in modalities.iter().enumerate() {
                let of = |ab: bool| -> Vec<usize> {
                    (0..study.cases.len())
                        .filter(|i| {
                            study.cases[*i].modality_name() == name
                                && study.cases[*i].abnormal == Some(ab)
                        })
                        .collect()
                };
                let (abn, mut nor) = (of(true), of(false));
                // The same pairs for every reader: the study's seed.
                Rng::new(study.seed ^ fnv(name.as_bytes())).shuffle(&mut nor);
                if nor.is_empty() {
                    continue;
                }
                for (n, &a) in abn.iter().enumerate() {
                    let p = nor[n % nor.len()];
                    for &z in &slices[a] {
                        by_modality[m].push(Trial {
                            id: format!("{}|{}#{z}", study.cases[a].id, study.cases[p].id),
                            case: a,
                            partner: Some(p),
                            slice: z,
                            real_on_left: false,
                        });
                    }
                }
            }
        }
        _ => {
            for (i, c) in study.cases.iter().enumerate() {
                for &z in &slices[i] {
                    by_modality[m_of(i)].push(Trial {
                        id: format!("{}#{z}", c.id),
                        case: i,
                        partner: None,
                        slice: z,
                        real_on_left: false,
                    });
                }
            }
        }
    }
    let mut out = Vec::new();
    match study.rating.order {
        ReadingOrder::Blocks => {
            // Counterbalanced: each reader starts at a modality of their own.
            let start = rng.below(modalities.len().max(1));
            for k in 0..modalities.len() {
                let mut block = std::mem::take(&mut by_modality[(start + k) % modalities.len()]);
                rng.shuffle(&mut block);
                out.extend(block);
            }
        }
        ReadingOrder::Interleaved => {
            let mut all: Vec<Trial> = by_modality.into_iter().flatten().collect();
            rng.shuffle(&mut all);
            out = washout(all, study);
        }
    }
    // 2AFC: the abnormal image's side ("real_on_left" reused: the lesion image is on the left).
    for t in &mut out {
        t.real_on_left = rng.below(2) == 0;
    }
    out
}

/// Reorder shuffled `trials` so that two readings of one subject are far apart: the subjects in
/// the shuffled order, each subject's modalities in its own order, read in rounds (round r:
/// every subject's r-th modality), so two readings of a subject are at least (subjects - 1)
/// images apart (the study's `washout` is met whenever it has more subjects than that).
fn washout(trials: Vec<Trial>, study: &Study) -> Vec<Trial> {
    let subject = |t: &Trial| study.cases[t.case].subject_id().to_string();
    let modality = |t: &Trial| study.cases[t.case].modality_name().to_string();
    // Subjects and, per subject, modalities in order of first appearance (already shuffled).
    let mut subjects: Vec<String> = Vec::new();
    let mut groups: Vec<Vec<(String, Vec<Trial>)>> = Vec::new();
    for t in trials {
        let (s, m) = (subject(&t), modality(&t));
        let si = match subjects.iter().position(|x| *x == s) {
            Some(i) => i,
            None => {
                subjects.push(s);
                groups.push(Vec::new());
                subjects.len() - 1
            }
        };
        match groups[si].iter_mut().find(|(mm, _)| *mm == m) {
            Some((_, v)) => v.push(t),
            None => groups[si].push((m, vec![t])),
        }
    }
    let rounds = groups.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::new();
    for r in 0..rounds {
        for g in groups.iter_mut() {
            if let Some((_, v)) = g.get_mut(r) {
                out.append(v);
            }
        }
    }
    out
}

/// The fewest other images between two readings of one subject in `trials` (None: no subject
/// is read twice).
pub fn min_gap(trials: &[Trial], study: &Study) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, a) in trials.iter().enumerate() {
        for (j, b) in trials.iter().enumerate().skip(i + 1) {
            if study.cases[a.case].subject_id() == study.cases[b.case].subject_id() {
                let g = j - i - 1;
                best = Some(best.map_or(g, |x: usize| x.min(g)));
                break;
            }
        }
    }
    best
}
