//! Values many cached keys hold alike, kept once: the lists of permission names (a
//! platform has a handful of them, and every key holds one), and an owner's limits
//! when they are the deployment's defaults.
//!
//! Lists are kept while there are at most [`MAX_LISTS`] of them; past that a key gets a
//! list of its own, so clients that give their keys every combination of permissions
//! cannot grow this without bound (they only lose the sharing).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use crate::verdict::OwnerLimits;

/// The most distinct permission lists kept for sharing.
const MAX_LISTS: usize = 4_096;

pub(crate) struct SharedValues {
    lists: Mutex<HashSet<Arc<[String]>>>,
    /// The deployment's default owner limits, for owners without their own.
    default_owner: Arc<OwnerLimits>,
}

impl SharedValues {
    pub(crate) fn new(default_owner: OwnerLimits) -> Self {
        Self {
            lists: Mutex::new(HashSet::new()),
            default_owner: Arc::new(default_owner),
        }
    }

    /// `names` as a list shared with every key that holds the same.
    pub(crate) fn permissions(&self, names: Vec<String>) -> Arc<[String]> {
        let mut lists = self.lists.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(list) = lists.get(names.as_slice()) {
            return Arc::clone(list);
        }
        let list: Arc<[String]> = names.into();
        if lists.len() < MAX_LISTS {
            lists.insert(Arc::clone(&list));
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
        self.lists.lock().unwrap().len()
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
        for i in 0..MAX_LISTS + 100 {
            let list = shared.permissions(vec![format!("P{i}")]);
            assert_eq!(&*list, [format!("P{i}")].as_slice());
        }
        assert_eq!(shared.lists(), MAX_LISTS);
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
