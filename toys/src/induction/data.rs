//! The induction task's data: random token sequences that repeat a random span once, so that
//! the tokens of the second copy can be predicted by copying what followed the same token in
//! the first copy.
//!
//! # The generator ([`RepeatedSpans`])
//!
//! A sequence has `T` positions (32) over a vocabulary of `V` tokens (64). For each sequence:
//!
//! 1. a span length `L` is drawn uniformly from `min_span..=max_span`;
//! 2. the start `a` of the first copy uniformly from `0..=T - 2L`, then the start `b` of the
//!    second copy uniformly from `a + L..=T - L` (the copies do not overlap);
//! 3. the span's `L` tokens are distinct, a draw without replacement from the vocabulary; the
//!    first copy holds them at `a..a + L`, the second at `b..b + L` (`x[b + j] = x[a + j]`);
//! 4. every other position gets a filler token drawn uniformly, with replacement, from the
//!    `V - L` tokens that are not in the span (so `L < V` is required);
//! 5. with [`Fillers::Echo`] (the default), every filler position `t` whose two predecessors
//!    are fillers then takes the token two back, `x[t] = x[t - 2]`, with probability 1/2, in
//!    order of `t`.
//!
//! A span token therefore occurs exactly once before the second copy, at its place in the
//! first copy, and the copy is unambiguous. Fillers may repeat (as in natural text); with echo
//! fillers, the token after `x y` among fillers is `x` half the time, which a head attending
//! to the previous token predicts directly. Without echoes the trained model's first layer is
//! a duplicate-token head (it attends to the earlier occurrence of the current token, or to
//! itself when there is none) rather than a previous-token head; with them, it becomes a
//! previous-token head (notes/induction.md).
//!
//! # The marks ([`PositionKind`])
//!
//! The model predicts at position `t` the token at `t + 1`. A position is
//! - *repeated* when `t` is in the second copy and so is `t + 1` (`b <= t < b + L - 1`): its
//!   next token is the one that followed `x[t]` in the first copy, predictable by copying;
//! - *first* (a first occurrence) when `t` is at the same place in the first copy
//!   (`a <= t < a + L - 1`): its next token is a fresh random token, predictable only by
//!   chance (about `1 / V`: a span token has not occurred before);
//! - *other* otherwise (random tokens, the last position, and the position before each copy).
//!
//! Each sequence has `L - 1` repeated and `L - 1` first positions, at the same offsets in the
//! span, so the two sets are matched in number and in place within the span.

use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tensor::Tensor;

/// What the token after a position is (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PositionKind {
    /// In the second copy, followed by a copied token: predictable by induction.
    Repeated,
    /// At the same place in the first copy: followed by a fresh token.
    First,
    /// Anything else.
    Other,
}

impl PositionKind {
    /// The code stored in a marks file: 0 other, 1 repeated, 2 first.
    pub fn code(self) -> i64 {
        match self {
            PositionKind::Other => 0,
            PositionKind::Repeated => 1,
            PositionKind::First => 2,
        }
    }

    /// The kind of a marks-file code, if it is one.
    pub fn from_code(code: i64) -> Option<Self> {
        match code {
            0 => Some(PositionKind::Other),
            1 => Some(PositionKind::Repeated),
            2 => Some(PositionKind::First),
            _ => None,
        }
    }
}

/// Where the filler tokens (every position outside the two copies) are drawn from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fillers {
    /// Uniformly from the `V - L` tokens not in the span: a span token occurs only in the
    /// copies. The reading of records written before this setting existed (the default data
    /// is [`Fillers::Echo`]).
    #[default]
    NotSpan,
    /// Uniformly from the whole vocabulary: a span token may also occur before, between or
    /// after the copies.
    Any,
    /// As `NotSpan`, then every filler position `t` whose two predecessors are fillers
    /// repeats the token two back (`x[t] = x[t - 2]`) with probability 1/2, in order of `t`:
    /// after `x y`, the next token is `x` half the time, which a head on the previous token
    /// predicts and copying an earlier occurrence of `y` does not (`y` is usually new).
    Echo,
}

/// The generator's settings. Invariants (checked by [`RepeatedSpans::validate`]):
/// `2 <= min_span <= max_span`, `2 max_span <= context`, `max_span < vocab`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepeatedSpans {
    pub vocab: usize,
    pub context: usize,
    pub min_span: usize,
    pub max_span: usize,
    /// Records written before this setting existed drew from the non-span tokens, and read
    /// so.
    #[serde(default)]
    pub fillers: Fillers,
}

impl Default for RepeatedSpans {
    /// The `attention` workload's sizes, 64 tokens and 32 positions, with spans of 6 to 16
    /// and echo fillers (measured without echoes: spans of 4 to 12 trained to 92% accuracy on
    /// repeated positions at the same settings, 6 to 16 to 98%; with echoes, 99%, and layer 0
    /// a previous-token head; notes/induction.md).
    fn default() -> Self {
        Self {
            vocab: 64,
            context: 32,
            min_span: 6,
            max_span: 16,
            fillers: Fillers::Echo,
        }
    }
}

/// One sequence and where its copies are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sequence {
    pub tokens: Vec<usize>,
    /// Start of the first copy (`a`).
    pub first: usize,
    /// Start of the second copy (`b`).
    pub second: usize,
    /// Span length (`L`).
    pub span: usize,
}

impl Sequence {
    /// Whether position `p` holds a filler (is in neither copy).
    pub fn is_filler(&self, p: usize) -> bool {
        let copy = |start: usize| (start..start + self.span).contains(&p);
        !copy(self.first) && !copy(self.second)
    }

    /// The kind of every position (see the module docs).
    pub fn marks(&self) -> Vec<PositionKind> {
        (0..self.tokens.len())
            .map(|t| {
                if t >= self.second && t + 1 < self.second + self.span {
                    PositionKind::Repeated
                } else if t >= self.first && t + 1 < self.first + self.span {
                    PositionKind::First
                } else {
                    PositionKind::Other
                }
            })
            .collect()
    }
}

/// A batch of sequences as the model takes them, with their marks.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenSet {
    /// Token ids `[N, T]` (as floats, the form `nets` models take).
    pub tokens: Tensor<f32>,
    /// `marks[n][t]`: the kind of position `t` of sequence `n`.
    pub marks: Vec<Vec<PositionKind>>,
}

impl TokenSet {
    /// The number of sequences.
    pub fn len(&self) -> usize {
        self.marks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.marks.is_empty()
    }

    /// The next-token targets as one-hot rows `[N, T, V]`; the last position, which has no
    /// next token, is all zeros (it adds nothing to a cross-entropy against these rows).
    pub fn next_token_one_hot(&self, vocab: usize) -> Tensor<f32> {
        let (n, t) = (self.tokens.shape()[0], self.tokens.shape()[1]);
        let mut out = Tensor::zeros(&[n, t, vocab]);
        let ids = self.tokens.data();
        let data = out.data_mut();
        for s in 0..n {
            for p in 0..t.saturating_sub(1) {
                let next = ids[s * t + p + 1] as usize;
                data[(s * t + p) * vocab + next] = 1.0;
            }
        }
        out
    }

    /// The marks as codes `[N, T]` ([`PositionKind::code`]), for a marks file.
    pub fn mark_codes(&self) -> Vec<i64> {
        self.marks.iter().flatten().map(|k| k.code()).collect()
    }
}

impl RepeatedSpans {
    /// Checks the invariants; the message names the setting at fault.
    pub fn validate(&self) -> Result<(), String> {
        let s = self;
        if s.min_span < 2 || s.min_span > s.max_span {
            return Err(format!(
                "spans need 2 <= min_span <= max_span, got min_span {} and max_span {}",
                s.min_span, s.max_span
            ));
        }
        if 2 * s.max_span > s.context {
            return Err(format!(
                "two copies of max_span {} do not fit in context {}",
                s.max_span, s.context
            ));
        }
        if s.max_span >= s.vocab {
            return Err(format!(
                "a span of max_span {} distinct tokens leaves no filler token in vocab {}",
                s.max_span, s.vocab
            ));
        }
        Ok(())
    }

    /// One sequence drawn from `rng`. Panics if the settings are invalid (validate first).
    pub fn sequence(&self, rng: &mut impl Rng) -> Sequence {
        let (t, span) = (self.context, rng.gen_range(self.min_span..=self.max_span));
        let first = rng.gen_range(0..=t - 2 * span);
        let second = rng.gen_range(first + span..=t - span);
        let mut vocab: Vec<usize> = (0..self.vocab).collect();
        let (words, fillers) = vocab.partial_shuffle(rng, span);
        let mut seq = Sequence {
            tokens: vec![0; t],
            first,
            second,
            span,
        };
        for (p, token) in seq.tokens.iter_mut().enumerate() {
            *token = if (first..first + span).contains(&p) {
                words[p - first]
            } else if (second..second + span).contains(&p) {
                words[p - second]
            } else {
                match self.fillers {
                    Fillers::NotSpan | Fillers::Echo => fillers[rng.gen_range(0..fillers.len())],
                    Fillers::Any => rng.gen_range(0..self.vocab),
                }
            };
        }
        if self.fillers == Fillers::Echo {
            for p in 2..t {
                let fillers = seq.is_filler(p) && seq.is_filler(p - 1) && seq.is_filler(p - 2);
                if fillers && rng.gen_bool(0.5) {
                    seq.tokens[p] = seq.tokens[p - 2];
                }
            }
        }
        seq
    }

    /// `n` sequences drawn from `rng`, as model inputs with their marks.
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> TokenSet {
        let mut ids = Vec::with_capacity(n * self.context);
        let mut marks = Vec::with_capacity(n);
        for _ in 0..n {
            let s = self.sequence(rng);
            ids.extend(s.tokens.iter().map(|&x| x as f32));
            marks.push(s.marks());
        }
        TokenSet {
            tokens: Tensor::from_vec(&[n, self.context], ids),
            marks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensor::rng;

    #[test]
    fn the_second_copy_repeats_the_first_and_span_tokens_occur_nowhere_else() {
        for fillers in [Fillers::NotSpan, Fillers::Echo] {
            copies_repeat_and_span_tokens_occur_nowhere_else(fillers);
        }
    }

    fn copies_repeat_and_span_tokens_occur_nowhere_else(fillers: Fillers) {
        let spec = RepeatedSpans {
            fillers,
            ..RepeatedSpans::default()
        };
        let mut r = rng(7);
        let mut spans = std::collections::BTreeSet::new();
        for _ in 0..500 {
            let s = spec.sequence(&mut r);
            assert_eq!(s.tokens.len(), 32);
            assert!(s.first + s.span <= s.second && s.second + s.span <= 32);
            assert_eq!(
                s.tokens[s.first..s.first + s.span],
                s.tokens[s.second..s.second + s.span]
            );
            // The span's tokens are distinct and occur only in the two copies.
            let words = &s.tokens[s.first..s.first + s.span];
            let distinct: std::collections::BTreeSet<_> = words.iter().collect();
            assert_eq!(distinct.len(), s.span);
            for p in 0..32 {
                assert_eq!(
                    words.contains(&s.tokens[p]),
                    !s.is_filler(p),
                    "{s:?} at {p}"
                );
                assert!(s.tokens[p] < 64);
            }
            spans.insert(s.span);
        }
        assert_eq!(spans, (6..=16).collect(), "every span length occurs");
    }

    #[test]
    fn marks_name_the_positions_whose_next_token_is_copied() {
        for fillers in [Fillers::NotSpan, Fillers::Echo] {
            marks_follow_the_definition_by_tokens(fillers);
        }
    }

    fn marks_follow_the_definition_by_tokens(fillers: Fillers) {
        let spec = RepeatedSpans {
            fillers,
            ..RepeatedSpans::default()
        };
        let mut r = rng(8);
        for _ in 0..300 {
            let s = spec.sequence(&mut r);
            let marks = s.marks();
            let count = |k| marks.iter().filter(|&&m| m == k).count();
            assert_eq!(count(PositionKind::Repeated), s.span - 1);
            assert_eq!(count(PositionKind::First), s.span - 1);
            for (t, &m) in marks.iter().enumerate() {
                // The definition by tokens: a repeated position's token occurred once before,
                // followed by this position's next token; a first position's next token has
                // not occurred yet; no other position is followed by a span token that
                // continues the span.
                let earlier: Vec<usize> = (0..t).filter(|&u| s.tokens[u] == s.tokens[t]).collect();
                let next = s.tokens.get(t + 1);
                let copied = earlier.len() == 1 && next == Some(&s.tokens[earlier[0] + 1]);
                let next_is_new = next.is_some_and(|n| !s.tokens[..=t].contains(n));
                let words = &s.tokens[s.first..s.first + s.span];
                let continues_span = words
                    .windows(2)
                    .any(|w| w[0] == s.tokens[t] && Some(&w[1]) == next);
                match m {
                    PositionKind::Repeated => assert!(copied, "{s:?} at {t}"),
                    PositionKind::First => assert!(next_is_new, "{s:?} at {t}"),
                    PositionKind::Other => assert!(!continues_span, "{s:?} at {t}"),
                }
            }
        }
    }

    #[test]
    fn echo_fillers_repeat_the_token_two_back_half_the_time_and_only_among_fillers() {
        let spec = RepeatedSpans {
            fillers: Fillers::Echo,
            ..RepeatedSpans::default()
        };
        let mut r = rng(9);
        // [echoes, eligible] over positions whose two predecessors are fillers.
        let mut tally = [0usize; 2];
        for _ in 0..2000 {
            let s = spec.sequence(&mut r);
            for p in 2..32 {
                if s.is_filler(p) && s.is_filler(p - 1) && s.is_filler(p - 2) {
                    tally[0] += (s.tokens[p] == s.tokens[p - 2]) as usize;
                    tally[1] += 1;
                }
            }
        }
        // 1/2 by echo, plus 1/2 x (about 1/50) by chance.
        let rate = tally[0] as f64 / tally[1] as f64;
        assert!((0.48..0.54).contains(&rate), "{rate} of {}", tally[1]);
    }

    #[test]
    fn fillers_from_the_whole_vocabulary_hold_span_tokens_too() {
        let spec = RepeatedSpans {
            fillers: Fillers::Any,
            ..RepeatedSpans::default()
        };
        let mut r = rng(10);
        let mut span_token_outside = 0;
        for _ in 0..500 {
            let s = spec.sequence(&mut r);
            let words = &s.tokens[s.first..s.first + s.span];
            assert_eq!(words, &s.tokens[s.second..s.second + s.span]);
            span_token_outside += (0..32)
                .filter(|&p| s.is_filler(p) && words.contains(&s.tokens[p]))
                .count();
        }
        // About a sixth of the fillers (span 11 of 64 tokens on average).
        assert!(span_token_outside > 500, "{span_token_outside}");
    }

    #[test]
    fn the_same_seed_gives_the_same_sequences() {
        let spec = RepeatedSpans::default();
        let a = spec.sample(50, &mut rng(3));
        let b = spec.sample(50, &mut rng(3));
        let c = spec.sample(50, &mut rng(4));
        assert_eq!(a, b);
        assert_ne!(a.tokens, c.tokens);
    }

    #[test]
    fn one_hot_targets_are_the_next_tokens() {
        let spec = RepeatedSpans::default();
        let set = spec.sample(3, &mut rng(5));
        let y = set.next_token_one_hot(64);
        assert_eq!(y.shape(), &[3, 32, 64]);
        for s in 0..3 {
            for t in 0..32 {
                let row = &y.data()[(s * 32 + t) * 64..(s * 32 + t + 1) * 64];
                let sum: f32 = row.iter().sum();
                if t == 31 {
                    assert_eq!(sum, 0.0);
                } else {
                    assert_eq!(sum, 1.0);
                    let next = set.tokens.data()[s * 32 + t + 1] as usize;
                    assert_eq!(row[next], 1.0);
                }
            }
        }
    }

    #[test]
    fn bad_settings_are_named() {
        let bad = |s: RepeatedSpans, what: &str| {
            let err = s.validate().unwrap_err();
            assert!(err.contains(what), "{err}");
        };
        let ok = RepeatedSpans::default();
        assert!(ok.validate().is_ok());
        bad(RepeatedSpans { min_span: 1, ..ok }, "min_span");
        bad(RepeatedSpans { max_span: 17, ..ok }, "max_span");
        bad(RepeatedSpans { min_span: 17, ..ok }, "min_span");
        bad(RepeatedSpans { vocab: 16, ..ok }, "vocab");
    }

    #[test]
    fn mark_codes_round_trip() {
        for k in [
            PositionKind::Other,
            PositionKind::Repeated,
            PositionKind::First,
        ] {
            assert_eq!(PositionKind::from_code(k.code()), Some(k));
        }
        assert_eq!(PositionKind::from_code(3), None);
    }
}
