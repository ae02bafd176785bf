//! The process-global model registry: `register`, `parametrize`, `init`, `get_options`, with the
//! reference's semantics (registration order, glob filtering, family listing, override moves a name
//! to the end, deprecated aliases). Thread-safe and open to models defined outside the crate.
use crate::error::{Error, Result};
use crate::model::{Model, ModelArgs};
use crate::options::Options;
use once_cell::sync::Lazy;
use std::sync::{Arc, RwLock};

/// Builds a model from its registered name and the constructor arguments.
pub type ModelFactory = Arc<dyn Fn(&str, &ModelArgs) -> Result<Box<dyn Model>> + Send + Sync>;

/// How a name is registered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegisterFlags {
    /// Replace an existing entry of the same name (the entry moves to the end of the listing).
    pub override_existing: bool,
    /// Allow the same factory under a second (legacy) name. As in the reference, the flag only
    /// lifts the duplicate-class check; deprecated names are listed and build silently.
    pub deprecated: bool,
}

#[derive(Clone)]
struct Entry {
    name: String,
    /// The parametrize pattern for generated names, `None` for plain registrations.
    base: Option<String>,
    /// The keyword defaults of a generated name, merged under the caller's options on each init.
    defaults: Options,
    factory: ModelFactory,
}

/// The reference's message for an unknown name, with the closest registered names as a hint.
fn unknown_name(name: &str, entries: &[Entry]) -> Error {
    let mut scored: Vec<(usize, &str)> = entries
        .iter()
        .map(|e| (strsim::levenshtein(&name.to_lowercase(), &e.name), e.name.as_str()))
        .filter(|(distance, _)| *distance <= (name.len() / 3).max(2))
        .collect();
    scored.sort();
    let hint = match scored.iter().take(3).map(|(_, n)| format!("'{n}'")).collect::<Vec<_>>().as_slice() {
        [] => String::new(),
        close => format!(" Did you mean {}?", close.join(" or ")),
    };
    Error::UnknownName(format!(
        "name is {name}, not found in options.{hint} (`cebra list` or cebra_get_options lists the registered names)"
    ))
}

/// A registry of model factories. The crate keeps one global instance (see [`models`]); separate
/// instances are useful in tests.
pub struct Registry {
    entries: RwLock<Vec<Entry>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Registry { entries: RwLock::new(Vec::new()) }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Entry>> {
        // A panic while holding the lock cannot leave the Vec half-updated (every update is a single
        // push/remove), so a poisoned lock is still consistent.
        self.entries.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Entry>> {
        self.entries.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers `factory` under `name`.
    ///
    /// Errors: an empty name; a name already present (unless `override_existing`); the same factory
    /// (same `Arc`) already registered under another name with the same base (unless `deprecated`).
    pub fn register(&self, name: &str, factory: ModelFactory, flags: RegisterFlags) -> Result<()> {
        self.insert(Entry { name: name.to_string(), base: None, defaults: Options::new(), factory }, flags)
    }

    fn insert(&self, entry: Entry, flags: RegisterFlags) -> Result<()> {
        if entry.name.is_empty() {
            return Err(Error::InvalidArgument("a registered name must not be empty".into()));
        }
        // A replaced entry is dropped only after the lock is released: dropping a factory can run
        // foreign code (a C `free_user_data`) that may call back into the registry.
        let mut replaced = None;
        let result = self.insert_locked(entry, flags, &mut replaced);
        drop(replaced);
        result
    }

    fn insert_locked(&self, entry: Entry, flags: RegisterFlags, replaced: &mut Option<Entry>) -> Result<()> {
        let mut entries = self.write();
        let existing = entries.iter().position(|e| e.name == entry.name);
        if existing.is_some() && !flags.override_existing {
            return Err(Error::AlreadyRegistered(format!("Name {} is already registered.", entry.name)));
        }
        // Every check runs before anything is removed, so a failed registration changes nothing. The
        // entry being replaced does not count as a duplicate of the new factory.
        if !flags.deprecated
            && entry.base.is_none()
            && let Some(other) = entries.iter().enumerate().find_map(|(i, e)| {
                (Some(i) != existing && e.base.is_none() && Arc::ptr_eq(&e.factory, &entry.factory)).then_some(e)
            })
        {
            return Err(Error::AlreadyRegistered(format!(
                "The model factory of '{}' is already registered as '{}'. Register it with the deprecated flag to keep an alias.",
                entry.name, other.name
            )));
        }
        if let Some(pos) = existing {
            *replaced = Some(entries.remove(pos));
        }
        entries.push(entry);
        Ok(())
    }

    /// The reference's `parametrize(pattern, **all_kwargs)`: registers one name per element of the
    /// Cartesian product of the value lists (first key outermost, last key fastest), each formatted
    /// from `pattern` by replacing `{key}` and building with those keyword defaults.
    pub fn parametrize(&self, pattern: &str, kwargs: &[(&str, Vec<String>)], factory: ModelFactory) -> Result<()> {
        let mut combos: Vec<Vec<(&str, &String)>> = vec![Vec::new()];
        for (key, values) in kwargs {
            if values.is_empty() {
                return Err(Error::InvalidArgument(format!("parametrize: no values for '{key}'")));
            }
            combos = combos
                .into_iter()
                .flat_map(|prefix| {
                    values.iter().map(move |v| {
                        let mut c = prefix.clone();
                        c.push((*key, v));
                        c
                    })
                })
                .collect();
        }
        for combo in combos {
            let mut name = pattern.to_string();
            let mut defaults = Options::new();
            for (key, value) in combo {
                name = name.replace(&format!("{{{key}}}"), value);
                defaults.set(key, value);
            }
            if name.contains('{') {
                return Err(Error::InvalidArgument(format!(
                    "parametrize: pattern '{pattern}' has a field without values"
                )));
            }
            self.insert(
                Entry { name, base: Some(pattern.to_string()), defaults, factory: factory.clone() },
                RegisterFlags::default(),
            )?;
        }
        Ok(())
    }

    /// Removes a name.
    pub fn unregister(&self, name: &str) -> Result<()> {
        let removed = {
            let mut entries = self.write();
            let pos = entries
                .iter()
                .position(|e| e.name == name)
                .ok_or_else(|| unknown_name(name, &entries))?;
            entries.remove(pos)
        };
        // Dropped outside the lock (see `insert`).
        drop(removed);
        Ok(())
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.read().iter().any(|e| e.name == name)
    }

    /// Builds the model registered as `name`. Keyword defaults of a parametrized name are merged under
    /// `args.options` for this call only.
    pub fn init(&self, name: &str, args: &ModelArgs) -> Result<Box<dyn Model>> {
        let entry = {
            let entries = self.read();
            let found = entries.iter().find(|e| e.name == name).cloned();
            found.ok_or_else(|| unknown_name(name, &entries))?
        };
        let args = ModelArgs { options: args.options.merged_over(&entry.defaults), ..args.clone() };
        // The lock is released: a factory may itself use the registry.
        (entry.factory)(name, &args)
    }

    /// The reference's `get_options`: names in registration order; with `expand_parametrized == false`
    /// each parametrized family is listed by its first expansion only; then glob filtering with `*`,
    /// `?`, `[seq]`, `[!seq]` (whole name, case-sensitive); then Python slicing by `limit` (`None` all,
    /// negative drops from the end).
    ///
    /// ```
    /// let names = cebra::models().get_options(Some("offset[15]-model"), None, true);
    /// assert_eq!(names, ["offset5-model", "offset1-model"]);
    /// assert_eq!(cebra::models().get_options(None, None, false).len(), 29);
    /// ```
    pub fn get_options(&self, pattern: Option<&str>, limit: Option<isize>, expand_parametrized: bool) -> Vec<String> {
        let entries = self.read();
        let mut seen_bases: Vec<&str> = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for e in entries.iter() {
            if !expand_parametrized && let Some(base) = &e.base {
                if seen_bases.contains(&base.as_str()) {
                    continue;
                }
                seen_bases.push(base);
            }
            if pattern.is_none_or(|p| glob_match(p, &e.name)) {
                names.push(e.name.clone());
            }
        }
        python_slice(names, limit)
    }
}

/// `result[:limit]` with Python semantics.
pub(crate) fn python_slice(mut names: Vec<String>, limit: Option<isize>) -> Vec<String> {
    if let Some(limit) = limit {
        let len = names.len() as isize;
        let end = if limit < 0 { (len + limit).max(0) } else { limit.min(len) };
        names.truncate(end as usize);
    }
    names
}

/// `fnmatch.fnmatchcase`: `*`, `?`, `[seq]`, `[!seq]` (ranges `a-z`), matched against the whole name.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = name.chars().collect();
    // Iterative matcher with backtracking to the last '*': linear in practice, no recursion.
    let (mut pi, mut si) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                '?' => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                '[' => {
                    if let Some((matched, next)) = match_class(&p, pi, s[si]) {
                        if matched {
                            pi = next;
                            si += 1;
                            continue;
                        }
                    } else if s[si] == '[' {
                        // An unclosed '[' is a literal, as in fnmatch.
                        pi += 1;
                        si += 1;
                        continue;
                    }
                }
                c if c == s[si] => {
                    pi += 1;
                    si += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, ss)) => {
                pi = sp + 1;
                si = ss + 1;
                star = Some((sp, ss + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class starting at `p[start] == '['`; returns (matched, index after `]`),
/// or `None` if the class is not closed.
fn match_class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = i < p.len() && p[i] == '!';
    if negate {
        i += 1;
    }
    let first = i;
    let mut matched = false;
    while i < p.len() {
        if p[i] == ']' && i > first {
            return Some((matched != negate, i + 1));
        }
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            if p[i] <= c && c <= p[i + 2] {
                matched = true;
            }
            i += 3;
        } else {
            if p[i] == c {
                matched = true;
            }
            i += 1;
        }
    }
    None
}

static MODELS: Lazy<Registry> = Lazy::new(|| {
    let registry = Registry::new();
    crate::zoo::register_reference_models(&registry).expect("the reference catalogue registers cleanly");
    registry
});

/// The global model registry, holding the 147 reference names first.
pub fn models() -> &'static Registry {
    &MODELS
}

/// `cebra.models.init(name, num_neurons, num_units, num_output, **options)` on the global registry.
///
/// ```
/// let model = cebra::init("offset10-model", &cebra::ModelArgs::new(10, 16, 4)).unwrap();
/// assert_eq!(model.offset().len(), 10);
/// ```
pub fn init(name: &str, args: &ModelArgs) -> Result<Box<dyn Model>> {
    models().init(name, args)
}

/// `cebra.models.get_options` on the global registry.
pub fn get_options(pattern: Option<&str>, limit: Option<isize>, expand_parametrized: bool) -> Vec<String> {
    models().get_options(pattern, limit, expand_parametrized)
}

/// Registers a model factory in the global registry.
pub fn register(name: &str, factory: ModelFactory, flags: RegisterFlags) -> Result<()> {
    models().register(name, factory, flags)
}
