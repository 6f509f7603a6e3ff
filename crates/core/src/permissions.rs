//! Permissions: a configured catalogue of UPPERCASE names, and sets over it.
//!
//! A key holds a subset of the catalogue; a verification may require several
//! permissions and passes only if the key holds all of them. Sets are bitsets over
//! catalogue positions, so the check on the hot path is one AND and one compare.

use std::fmt;

/// The largest catalogue supported (one bit per permission in a `u128`).
pub const MAX_CATALOGUE_LEN: usize = 128;
/// The longest permission name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// AutoGPT's permission names, the default catalogue.
pub const AUTOGPT_PERMISSIONS: [&str; 12] = [
    "IDENTITY",
    "EXECUTE_GRAPH",
    "READ_GRAPH",
    "WRITE_GRAPH",
    "EXECUTE_BLOCK",
    "READ_BLOCK",
    "READ_STORE",
    "WRITE_LIBRARY",
    "USE_TOOLS",
    "MANAGE_INTEGRATIONS",
    "READ_INTEGRATIONS",
    "DELETE_INTEGRATIONS",
];

/// The permission names a deployment knows, in a fixed order.
#[derive(Clone, PartialEq, Eq)]
pub struct Catalogue {
    names: Vec<Box<str>>,
}

/// Why a catalogue configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogueError {
    #[error("the permission catalogue is empty")]
    Empty,
    #[error("the permission catalogue has more than {MAX_CATALOGUE_LEN} names")]
    TooLarge,
    #[error(
        "permission name {0:?} must be 1-{MAX_NAME_LEN} characters of A-Z, 0-9 and _, starting with a letter"
    )]
    InvalidName(String),
    #[error("permission name {0:?} is listed twice")]
    Duplicate(String),
}

/// Names that are not in the catalogue, in the order they were given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission(s): {}", .0.join(", "))]
pub struct UnknownPermissions(pub Vec<String>);

fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=MAX_NAME_LEN).contains(&bytes.len())
        && bytes[0].is_ascii_uppercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_')
}

impl Catalogue {
    pub fn new<I, S>(names: I) -> Result<Self, CatalogueError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out: Vec<Box<str>> = Vec::new();
        for name in names {
            let name = name.as_ref();
            if !is_valid_name(name) {
                return Err(CatalogueError::InvalidName(name.to_owned()));
            }
            if out.iter().any(|n| &**n == name) {
                return Err(CatalogueError::Duplicate(name.to_owned()));
            }
            out.push(name.into());
        }
        if out.is_empty() {
            return Err(CatalogueError::Empty);
        }
        if out.len() > MAX_CATALOGUE_LEN {
            return Err(CatalogueError::TooLarge);
        }
        Ok(Self { names: out })
    }

    /// Parses a comma-separated list, as given in `KEYWARD_PERMISSIONS`.
    pub fn parse_list(list: &str) -> Result<Self, CatalogueError> {
        Self::new(list.split(',').map(str::trim).filter(|s| !s.is_empty()))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(|n| &**n)
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| &**n == name)
    }

    /// The set named by `names`: duplicates collapse, every unknown name is reported.
    pub fn set_of<S: AsRef<str>>(&self, names: &[S]) -> Result<PermissionSet, UnknownPermissions> {
        let mut set = PermissionSet::EMPTY;
        let mut unknown = Vec::new();
        for name in names {
            match self.position(name.as_ref()) {
                Some(i) => set.0 |= 1 << i,
                None => unknown.push(name.as_ref().to_owned()),
            }
        }
        if unknown.is_empty() {
            Ok(set)
        } else {
            Err(UnknownPermissions(unknown))
        }
    }

    /// Like [`Catalogue::set_of`], but names no longer in the catalogue are dropped:
    /// used for stored keys, which may predate a catalogue change.
    pub fn set_of_known<S: AsRef<str>>(&self, names: &[S]) -> PermissionSet {
        let mut set = PermissionSet::EMPTY;
        for name in names {
            if let Some(i) = self.position(name.as_ref()) {
                set.0 |= 1 << i;
            }
        }
        set
    }

    /// The names in `set`, in catalogue order.
    pub fn names_of(&self, set: PermissionSet) -> Vec<String> {
        self.names
            .iter()
            .enumerate()
            .filter(|(i, _)| set.0 & (1 << i) != 0)
            .map(|(_, n)| n.to_string())
            .collect()
    }
}

impl Default for Catalogue {
    fn default() -> Self {
        Self::new(AUTOGPT_PERMISSIONS).expect("the default catalogue is valid")
    }
}

impl fmt::Debug for Catalogue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// A set of permissions of one catalogue.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, Debug)]
pub struct PermissionSet(u128);

impl PermissionSet {
    pub const EMPTY: Self = Self(0);

    /// True if every permission in `required` is in `self`.
    pub fn contains_all(self, required: Self) -> bool {
        self.0 & required.0 == required.0
    }

    /// The permissions of `required` that `self` lacks.
    pub fn missing_from(self, required: Self) -> Self {
        Self(required.0 & !self.0)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_catalogue_is_autogpts() {
        let c = Catalogue::default();
        assert_eq!(c.len(), 12);
        assert_eq!(c.names().next(), Some("IDENTITY"));
    }

    #[test]
    fn sets_drop_duplicates_and_keep_catalogue_order() {
        let c = Catalogue::default();
        let set = c.set_of(&["READ_GRAPH", "EXECUTE_GRAPH", "READ_GRAPH"]);
        assert_eq!(c.names_of(set.unwrap()), ["EXECUTE_GRAPH", "READ_GRAPH"]);
    }

    #[test]
    fn every_unknown_name_is_reported() {
        let err = Catalogue::default().set_of(&["READ_GRAPH", "read_graph", "ADMIN"]);
        let err = err.unwrap_err();
        assert_eq!(err.0, ["read_graph", "ADMIN"]);
        assert_eq!(err.to_string(), "unknown permission(s): read_graph, ADMIN");
    }

    #[test]
    fn requiring_several_permissions_requires_all_of_them() {
        let c = Catalogue::default();
        let held = c.set_of(&["READ_GRAPH", "EXECUTE_GRAPH"]).unwrap();
        let both = c.set_of(&["READ_GRAPH", "EXECUTE_GRAPH"]).unwrap();
        let more = c.set_of(&["READ_GRAPH", "WRITE_GRAPH"]).unwrap();
        assert!(held.contains_all(both));
        assert!(held.contains_all(PermissionSet::EMPTY));
        assert!(!held.contains_all(more));
        assert_eq!(c.names_of(held.missing_from(more)), ["WRITE_GRAPH"]);
    }

    #[test]
    fn custom_catalogues_are_validated() {
        assert!(Catalogue::parse_list("A, B_2 ,C").is_ok());
        for (list, error) in [
            (" , ", CatalogueError::Empty),
            ("A,a", CatalogueError::InvalidName("a".into())),
            ("A,A", CatalogueError::Duplicate("A".into())),
        ] {
            assert_eq!(Catalogue::parse_list(list), Err(error), "{list:?}");
        }
        let too_many: Vec<String> = (0..=MAX_CATALOGUE_LEN).map(|i| format!("P{i}")).collect();
        assert_eq!(
            Catalogue::new(&too_many).unwrap_err(),
            CatalogueError::TooLarge
        );
        let max: Vec<String> = (0..MAX_CATALOGUE_LEN).map(|i| format!("P{i}")).collect();
        let c = Catalogue::new(&max).unwrap();
        let last = c.set_of(&["P127"]).unwrap();
        assert_eq!(c.names_of(last), ["P127"]);
    }

    #[test]
    fn stored_names_outside_the_catalogue_are_ignored_for_decisions() {
        let c = Catalogue::default();
        let set = c.set_of_known(&["READ_GRAPH", "RETIRED_SCOPE"]);
        assert_eq!(c.names_of(set), ["READ_GRAPH"]);
    }
}
