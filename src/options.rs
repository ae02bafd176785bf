//! Keyword options: the `"key=value;key=value"` strings of the C ABI and the `**kwargs` of the reference.
use crate::error::{invalid, Result};

/// An ordered set of keyword options. Values stay text until a consumer asks for a type, so that
/// the consumer's error names the key and the expected type.
///
/// ```
/// use cebra::Options;
/// let o = Options::new().with("normalize", false).with("dropout", 0.2);
/// assert_eq!(o.to_string_canonical(), "normalize=false;dropout=0.2");
/// assert_eq!(Options::parse(&o.to_string_canonical()).unwrap(), o);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    entries: Vec<(String, String)>,
}

impl Options {
    /// The most options [`Options::parse`] accepts in one string.
    pub const MAX_ENTRIES: usize = 256;

    /// No options.
    ///
    /// ```
    /// assert!(cebra::Options::new().is_empty());
    /// ```
    pub fn new() -> Self {
        Options::default()
    }

    /// Parses `"key=value;key=value"`; whitespace around keys and values is ignored, empty segments are
    /// skipped. A segment without `=`, an empty key or a key given twice is an error naming it, and so
    /// is a string with more than [`Options::MAX_ENTRIES`] options (lookups are linear, so this keeps
    /// parsing and every consumer linear in the length of the text).
    ///
    /// ```
    /// let o = cebra::Options::parse(" normalize = false ; dropout=0.2").unwrap();
    /// assert_eq!(o.get("normalize"), Some("false"));
    /// assert!(cebra::Options::parse("a=1;a=2").is_err());
    /// let many: String = (0..=cebra::Options::MAX_ENTRIES).map(|i| format!("k{i}=1;")).collect();
    /// assert!(cebra::Options::parse(&many).is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self> {
        let mut options = Options::new();
        for segment in text.split(';') {
            let segment = segment.trim();
            if segment.is_empty() {
                continue;
            }
            let (key, value) = segment
                .split_once('=')
                .ok_or_else(|| invalid!("malformed option '{segment}': expected key=value"))?;
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() {
                return Err(invalid!("malformed option '{segment}': the key is empty"));
            }
            if !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(invalid!("malformed option key '{key}': use letters, digits and '_'"));
            }
            if options.get(key).is_some() {
                return Err(invalid!("option '{key}' is given twice"));
            }
            if options.entries.len() == Self::MAX_ENTRIES {
                return Err(invalid!("too many options (at most {})", Self::MAX_ENTRIES));
            }
            options.entries.push((key.to_string(), value.to_string()));
        }
        Ok(options)
    }

    /// Adds or replaces a value (builder style).
    ///
    /// ```
    /// let o = cebra::Options::new().with("temperature", 0.5).with("temperature", 1);
    /// assert_eq!(o.get("temperature"), Some("1"));
    /// ```
    pub fn with(mut self, key: &str, value: impl ToString) -> Self {
        self.set(key, value);
        self
    }

    /// Adds or replaces a value.
    ///
    /// ```
    /// let mut o = cebra::Options::new();
    /// o.set("reduce", "sum");
    /// o.set("reduce", "mean");
    /// assert_eq!(o.get("reduce"), Some("mean"));
    /// assert_eq!(o.keys().count(), 1);
    /// ```
    pub fn set(&mut self, key: &str, value: impl ToString) {
        let value = value.to_string();
        match self.entries.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }

    /// The raw text of a value.
    ///
    /// ```
    /// let o = cebra::Options::parse("tanh=-tanh").unwrap();
    /// assert_eq!(o.get("tanh"), Some("-tanh"));
    /// assert_eq!(o.get("other"), None);
    /// ```
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Keys in the order given.
    ///
    /// ```
    /// let o = cebra::Options::parse("b=1;a=2").unwrap();
    /// assert_eq!(o.keys().collect::<Vec<_>>(), ["b", "a"]);
    /// ```
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// True when no option is set.
    ///
    /// ```
    /// assert!(cebra::Options::parse(" ; ").unwrap().is_empty());
    /// assert!(!cebra::Options::parse("a=1").unwrap().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `defaults` overridden by `self`: the keyword merge of a parametrized name. The result is a new
    /// value, so nothing sticks between calls (unlike the reference's shared mutable defaults).
    ///
    /// ```
    /// use cebra::Options;
    /// let defaults = Options::parse("clip_min=5;clip_max=5").unwrap();
    /// let merged = Options::parse("clip_max=2").unwrap().merged_over(&defaults);
    /// assert_eq!(merged.to_string_canonical(), "clip_min=5;clip_max=2");
    /// assert_eq!(defaults.get("clip_max"), Some("5")); // the defaults are not changed
    /// ```
    pub fn merged_over(&self, defaults: &Options) -> Options {
        let mut merged = defaults.clone();
        for (k, v) in &self.entries {
            merged.set(k, v);
        }
        merged
    }

    /// Canonical text form, parseable by [`Options::parse`].
    ///
    /// ```
    /// let o = cebra::Options::parse(" a = 1 ;; b=x ").unwrap();
    /// assert_eq!(o.to_string_canonical(), "a=1;b=x");
    /// ```
    pub fn to_string_canonical(&self) -> String {
        self.entries.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";")
    }

    /// Checks that every key is one of `allowed`; the error names the first that is not.
    ///
    /// ```
    /// let o = cebra::Options::parse("normalise=true").unwrap();
    /// let err = o.check_keys(&["normalize"], "model 'offset10-model'").unwrap_err();
    /// assert_eq!(err.to_string(), "unknown option 'normalise' for model 'offset10-model' (accepted: normalize)");
    /// ```
    pub fn check_keys(&self, allowed: &[&str], owner: &str) -> Result<()> {
        for key in self.keys() {
            if !allowed.contains(&key) {
                let list = if allowed.is_empty() { "none".to_string() } else { allowed.join(", ") };
                return Err(invalid!("unknown option '{key}' for {owner} (accepted: {list})"));
            }
        }
        Ok(())
    }

    /// A boolean (`true`/`false`/`1`/`0`, any case), or `default` when absent.
    ///
    /// ```
    /// let o = cebra::Options::parse("normalize=False;x=maybe").unwrap();
    /// assert_eq!(o.bool_or("normalize", true).unwrap(), false);
    /// assert_eq!(o.bool_or("absent", true).unwrap(), true);
    /// assert!(o.bool_or("x", true).is_err());
    /// ```
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => Ok(true),
                "false" | "0" | "no" | "off" => Ok(false),
                _ => Err(invalid!("option '{key}' must be true or false, got '{v}'")),
            },
        }
    }

    /// A finite float, or `default` when absent.
    ///
    /// ```
    /// let o = cebra::Options::parse("temperature=0.1;bad=inf").unwrap();
    /// assert_eq!(o.f64_or("temperature", 1.0).unwrap(), 0.1);
    /// assert_eq!(o.f64_or("absent", 1.0).unwrap(), 1.0);
    /// assert!(o.f64_or("bad", 1.0).is_err()); // not finite
    /// ```
    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        self.f64_opt(key).map(|v| v.unwrap_or(default))
    }

    /// A finite float if present; `none`/`null` count as absent.
    ///
    /// ```
    /// let o = cebra::Options::parse("min_temperature=None;t=0.5").unwrap();
    /// assert_eq!(o.f64_opt("min_temperature").unwrap(), None);
    /// assert_eq!(o.f64_opt("t").unwrap(), Some(0.5));
    /// assert_eq!(o.f64_opt("absent").unwrap(), None);
    /// ```
    pub fn f64_opt(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("none") || v.eq_ignore_ascii_case("null") => Ok(None),
            Some(v) => match v.parse::<f64>() {
                Ok(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(invalid!("option '{key}' must be a finite number, got '{v}'")),
            },
        }
    }

    /// An integer, or `default` when absent.
    ///
    /// ```
    /// let o = cebra::Options::parse("n_intermediate_layers=3;x=2.5").unwrap();
    /// assert_eq!(o.i64_or("n_intermediate_layers", 1).unwrap(), 3);
    /// assert_eq!(o.i64_or("absent", 1).unwrap(), 1);
    /// assert!(o.i64_or("x", 1).is_err());
    /// ```
    pub fn i64_or(&self, key: &str, default: i64) -> Result<i64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .map_err(|_| invalid!("option '{key}' must be an integer, got '{v}'")),
        }
    }

    /// Text, or `default` when absent.
    ///
    /// ```
    /// let o = cebra::Options::parse("reduce=sum").unwrap();
    /// assert_eq!(o.str_or("reduce", "mean"), "sum");
    /// assert_eq!(o.str_or("other", "mean"), "mean");
    /// ```
    pub fn str_or<'a>(&'a self, key: &str, default: &'a str) -> &'a str {
        self.get(key).unwrap_or(default)
    }
}
