//! The receptive field of a model, as the reference's `cebra.data.datatypes.Offset`.
use crate::error::{invalid, Result};

/// Receptive field `[i - left, i + right)` around time step `i`; `right` includes the current sample.
///
/// ```
/// let o = cebra::Offset { left: 5, right: 5 };
/// assert_eq!(o.len(), 10);
/// assert_eq!(o.to_string(), "Offset(left = 5, right = 5, length = 10)");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Offset {
    /// Samples before the current one.
    pub left: i64,
    /// Samples from the current one on (at least 1).
    pub right: i64,
}

impl Offset {
    /// `Offset(left, right)` with the reference's validation.
    ///
    /// ```
    /// let o = cebra::Offset::new(5, 5).unwrap();
    /// assert_eq!(o.len(), 10);
    /// assert!(cebra::Offset::new(2, 0).is_err());
    /// ```
    pub fn new(left: i64, right: i64) -> Result<Self> {
        for v in [left, right] {
            if v < 0 {
                return Err(invalid!(
                    "Invalid Offset bounds, expect value superior or equal to 0, got {v}."
                ));
            }
        }
        if right == 0 {
            return Err(invalid!(
                "Invalid right bound. By convention, the right bound includes the current index. It should be at least set to 1, got 0"
            ));
        }
        if left.checked_add(right).is_none() {
            return Err(invalid!("Offset bounds {left} + {right} overflow a 64-bit length"));
        }
        Ok(Offset { left, right })
    }

    /// `Offset(k)`: `left = right = k`.
    ///
    /// ```
    /// assert_eq!(cebra::Offset::symmetric(5).unwrap(), cebra::Offset::new(5, 5).unwrap());
    /// assert!(cebra::Offset::symmetric(0).is_err()); // the right bound must be at least 1
    /// ```
    pub fn symmetric(k: i64) -> Result<Self> {
        Offset::new(k, k)
    }

    /// `left + right`: the input length that yields one output step.
    ///
    /// ```
    /// // The offset1 models see the current sample only.
    /// assert_eq!(cebra::Offset::new(0, 1).unwrap().len(), 1);
    /// ```
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> i64 {
        self.left + self.right
    }
}

impl std::fmt::Display for Offset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Offset(left = {}, right = {}, length = {})", self.left, self.right, self.len())
    }
}
