//! Values many cached keys hold alike, kept once: the lists of permission names (a
//! platform has a handful of them, and every key holds one), and an owner's limits
//! when they are the deployment's defaults.
//!
//! At most [`MAX_LISTS`] lists are kept: when the table is full, lists no cached key
//! holds any more are dropped (at most once per [`PRUNE_EVERY`] new lists, so a full
//! table of lists in use is not scanned on every miss); past that a key gets a list of
//! its own. Clients that give their keys every combination of permissions cannot grow
//! this without bound: they only lose the sharing.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::verdict::OwnerLimits;

/// The most distinct permission lists kept for sharing.
const MAX_LISTS: usize = 4_096;
/// New lists between two prunings of a full table.
const PRUNE_EVERY: usize = 1_024;

pub(crate) struct SharedValues {
    lists: Mutex<Lists>,
    /// The deployment's default owner limits, for owners without their own.
    default_owner: Arc<OwnerLimits>,
}

#[derive(Default)]
struct Lists {
    kept: HashSet<Arc<[String]>>,
    /// New lists not kept since the last pruning.
    unkept: usize,
}

impl SharedValues {
    pub(crate) fn new(default_owner: OwnerLimits) -> Self {
        Self {
            lists: Mutex::default(),
            default_owner: Arc::new(default_owner),
        }
    }

    /// `names` as a list shared with every key that holds the same.
    pub(crate) fn permissions(&self, names: Vec<String>) -> Arc<[String]> {
        let mut lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = lists.kept.get(names.as_slice()) {
            return Arc::clone(list);
        }
        let list: Arc<[String]> = names.into();
        if lists.kept.len() >= MAX_LISTS && lists.unkept >= PRUNE_EVERY {
            // Held by the table alone: no cached key has it any more.
            lists.kept.retain(|kept| Arc::strong_count(kept) > 1);
            lists.unkept = 0;
        }
        if lists.kept.len() < MAX_LISTS {
            lists.kept.insert(Arc::clone(&list));
        } else {
            lists.unkept += 1;
        }
        list
    }

    /// `limits`, shared when they are the defaults.
    pub(crate) fn owner(&self, limits: OwnerLimits) -> Arc<OwnerLimits> {
        if limits == *self.default_owner {
            Arc::clone(&self.default_owner)
        } else {
            Arc::new(limits)
        }
    }

    #[cfg(test)]
    fn lists(&self) -> usize {
        self.lists.lock().unwrap().kept.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn equal_lists_are_one_list_and_their_number_is_bounded() {
        let shared = SharedValues::new(OwnerLimits::default());
        let a = shared.permissions(names(&["READ_GRAPH", "EXECUTE_GRAPH"]));
        let b = shared.permissions(names(&["READ_GRAPH", "EXECUTE_GRAPH"]));
        assert!(Arc::ptr_eq(&a, &b));
        let other = shared.permissions(names(&["EXECUTE_GRAPH", "READ_GRAPH"]));
        assert!(!Arc::ptr_eq(&a, &other), "the order is the list's");
        assert_eq!(&*other, names(&["EXECUTE_GRAPH", "READ_GRAPH"]).as_slice());
        let mut held = Vec::new();
        for i in 0..MAX_LISTS + PRUNE_EVERY {
            let list = shared.permissions(vec![format!("P{i}")]);
            assert_eq!(&*list, [format!("P{i}")].as_slice());
            held.push(list);
        }
        assert_eq!(shared.lists(), MAX_LISTS, "full, and every list is held");
        // Lists no key holds any more make room again, at the next pruning.
        held.truncate(10);
        drop((a, b, other));
        for i in 0..=PRUNE_EVERY {
            shared.permissions(vec![format!("Q{i}")]);
        }
        assert!(shared.lists() < MAX_LISTS, "{} lists kept", shared.lists());
        let fresh = shared.permissions(vec!["NEW".to_owned()]);
        assert!(Arc::ptr_eq(
            &fresh,
            &shared.permissions(vec!["NEW".to_owned()])
        ));
    }

    #[test]
    fn default_owner_limits_are_shared_and_others_are_not() {
        let shared = SharedValues::new(OwnerLimits::default());
        let a = shared.owner(OwnerLimits::default());
        let b = shared.owner(OwnerLimits::default());
        assert!(Arc::ptr_eq(&a, &b));
        let limited = OwnerLimits {
            rate_limit: Some(keyward_core::rate::RateLimit::new(5, 60).unwrap()),
            credits: None,
        };
        assert_eq!(*shared.owner(limited), limited);
    }
}
