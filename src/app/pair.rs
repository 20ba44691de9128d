//! The CT/MR pair: which loaded volumes play which role, and the registration between them.

use crate::volume::{Affine, Modality, Volume};
use std::sync::Arc;

/// Role of a series in the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Shown in the CT pane.
    Ct,
    /// Shown in the MR pane.
    Mr,
}

/// The CT and MR of one subject, as indices into the app's volumes, and their alignment.
#[derive(Clone, Debug, Default)]
pub struct Pair {
    /// Index of the CT-role volume.
    pub ct: Option<usize>,
    /// Index of the MR-role volume.
    pub mr: Option<usize>,
    /// Registration: maps CT (view) points to MR points; the MR is drawn through it.
    pub mr_from_ct: Option<Affine>,
    /// Earlier registrations, for Undo.
    history: Vec<Option<Affine>>,
}

impl Pair {
    /// The CT-role volume among `volumes`.
    pub fn ct_volume<'a>(&self, volumes: &'a [Arc<Volume>]) -> Option<&'a Arc<Volume>> {
        self.ct.and_then(|i| volumes.get(i))
    }

    /// The MR-role volume among `volumes`.
    pub fn mr_volume<'a>(&self, volumes: &'a [Arc<Volume>]) -> Option<&'a Arc<Volume>> {
        self.mr.and_then(|i| volumes.get(i))
    }

    /// The CT and the MR volume, when both roles are assigned.
    pub fn both(&self, volumes: &[Arc<Volume>]) -> Option<(Arc<Volume>, Arc<Volume>)> {
        Some((
            self.ct_volume(volumes)?.clone(),
            self.mr_volume(volumes)?.clone(),
        ))
    }

    /// The role of volume `i`, if it has one.
    pub fn role(&self, i: usize) -> Option<Role> {
        if self.ct == Some(i) {
            Some(Role::Ct)
        } else if self.mr == Some(i) {
            Some(Role::Mr)
        } else {
            None
        }
    }

    /// Give volume `i` a role (replacing the previous holder of that role), or none.
    pub fn set_role(&mut self, i: usize, role: Option<Role>) {
        if self.ct == Some(i) {
            self.ct = None;
        }
        if self.mr == Some(i) {
            self.mr = None;
        }
        match role {
            Some(Role::Ct) => self.ct = Some(i),
            Some(Role::Mr) => self.mr = Some(i),
            None => {}
        }
    }

    /// Roles for the volumes from index `first_new` on, just loaded: the first CT and the first
    /// MR among them take the panes (guessed from Modality; the series browser overrides), and
    /// anything else fills an empty pane.
    pub fn assign_new(&mut self, volumes: &[Arc<Volume>], first_new: usize) {
        let (mut got_ct, mut got_mr) = (false, false);
        for (i, v) in volumes.iter().enumerate().skip(first_new) {
            match v.meta.modality {
                Modality::Ct if !got_ct => {
                    self.ct = Some(i);
                    got_ct = true;
                }
                Modality::Mr if !got_mr => {
                    self.mr = Some(i);
                    got_mr = true;
                }
                _ => {}
            }
        }
        for i in first_new..volumes.len() {
            if Some(i) == self.ct || Some(i) == self.mr {
                continue;
            }
            if self.ct.is_none() {
                self.ct = Some(i);
            } else if self.mr.is_none() {
                self.mr = Some(i);
            }
        }
    }

    /// Set the registration, remembering the previous one for Undo.
    pub fn set_transform(&mut self, t: Option<Affine>) {
        self.history.push(self.mr_from_ct);
        self.mr_from_ct = t;
    }

    /// Go back to the previous registration.
    pub fn undo_transform(&mut self) {
        if let Some(t) = self.history.pop() {
            self.mr_from_ct = t;
        }
    }

    /// Whether there is a registration to go back to.
    pub fn can_undo(&self) -> bool {
        !self.history.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::{Geometry, VolumeMeta};

    fn vol(modality: &str) -> Arc<Volume> {
        let meta = VolumeMeta {
            modality: Modality::from_code(modality),
            ..Default::default()
        };
        let g = Geometry::axis_aligned([2, 2, 2], [1.0; 3], [0.0; 3]);
        Arc::new(Volume::new(g, vec![0.0; 8], meta))
    }

    #[test]
    fn new_volumes_take_the_panes_by_modality_then_fill_empty_ones() {
        let vols = vec![vol("MR"), vol("OT"), vol("CT"), vol("CT")];
        let mut p = Pair::default();
        p.assign_new(&vols, 0);
        assert_eq!((p.ct, p.mr), (Some(2), Some(0)));
        let mut p = Pair::default();
        p.assign_new(&vols[..2], 0);
        assert_eq!(
            (p.ct, p.mr),
            (Some(1), Some(0)),
            "the other series fills the CT pane"
        );
    }

    #[test]
    fn a_role_has_one_holder_and_undo_restores_the_registration() {
        let mut p = Pair::default();
        p.set_role(0, Some(Role::Ct));
        p.set_role(1, Some(Role::Ct));
        assert_eq!((p.role(0), p.role(1)), (None, Some(Role::Ct)));
        p.set_role(1, Some(Role::Mr));
        assert_eq!((p.ct, p.mr), (None, Some(1)));
        let t = Affine::identity([1.0, 2.0, 3.0]);
        p.set_transform(Some(t));
        assert!(p.can_undo() && p.mr_from_ct.is_some());
        p.undo_transform();
        assert!(p.mr_from_ct.is_none() && !p.can_undo());
    }
}
