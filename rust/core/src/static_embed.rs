//! Static sentence embeddings: a text's vector is the weighted mean of fixed per-token vectors,
//! then L2-normalised. The token table (one row per vocabulary token, from a transformer run once
//! over each token alone) and the weights come from the caller; this module tokenises ASCII texts
//! (BERT's uncased WordPiece) and pools, in parallel, so that hundreds of thousands of short texts
//! take well under a second.

use std::collections::HashMap;

use rayon::prelude::*;

/// BERT's uncased WordPiece for ASCII text, as the `tokenizers` library configures it for
/// all-MiniLM-L6-v2 (lower case; control characters dropped; split at white space and around
/// each punctuation character; greedy longest-match pieces, continuations prefixed `##`; a word
/// that cannot be split, or of more than 100 characters, is `[UNK]`). Non-ASCII text needs
/// Unicode tables (accents, CJK, punctuation classes) this module does not carry: callers send
/// it to the `tokenizers` library instead.
pub struct WordPiece {
    vocab: HashMap<String, u32>,
    unk: u32,
}

const MAX_WORD_CHARS: usize = 100;

impl WordPiece {
    /// From the vocabulary, one token per id in id order; None without an `[UNK]` token.
    pub fn new<S: AsRef<str>>(tokens: &[S]) -> Option<WordPiece> {
        let vocab: HashMap<String, u32> = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_ref().to_string(), i as u32))
            .collect();
        let unk = *vocab.get("[UNK]")?;
        Some(WordPiece { vocab, unk })
    }

    /// Appends the ids of an ASCII text (other bytes are treated as letters: callers must not
    /// send them).
    pub fn encode(&self, text: &str, out: &mut Vec<u32>) {
        let mut word = String::with_capacity(32);
        let mut key = String::with_capacity(34);
        for b in text.bytes() {
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => self.word(&mut word, &mut key, out),
                0..=0x1f | 0x7f => {}
                _ if b.is_ascii_punctuation() => {
                    self.word(&mut word, &mut key, out);
                    word.push(b as char);
                    self.word(&mut word, &mut key, out);
                }
                _ => word.push(b.to_ascii_lowercase() as char),
            }
        }
        self.word(&mut word, &mut key, out);
    }

    fn word(&self, word: &mut String, key: &mut String, out: &mut Vec<u32>) {
        if word.is_empty() {
            return;
        }
        let mark = out.len();
        if word.len() > MAX_WORD_CHARS {
            out.push(self.unk);
            word.clear();
            return;
        }
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while end > start {
                key.clear();
                if start > 0 {
                    key.push_str("##");
                }
                key.push_str(&word[start..end]);
                if let Some(&id) = self.vocab.get(key.as_str()) {
                    found = Some(id);
                    break;
                }
                end -= 1;
            }
            match found {
                Some(id) => {
                    out.push(id);
                    start = end;
                }
                None => {
                    out.truncate(mark);
                    out.push(self.unk);
                    break;
                }
            }
        }
        word.clear();
    }

    /// Ids of many texts, concatenated, and each text's offsets (in parallel).
    pub fn encode_many<S: AsRef<str> + Sync>(&self, texts: &[S]) -> (Vec<u32>, Vec<usize>) {
        let parts: Vec<Vec<u32>> = texts
            .par_chunks(1024)
            .map(|chunk| {
                let mut ids = Vec::with_capacity(chunk.len() * 16);
                let mut ends = Vec::with_capacity(chunk.len());
                for t in chunk {
                    self.encode(t.as_ref(), &mut ids);
                    ends.push(ids.len() as u32);
                }
                // lengths first, then the ids: one allocation per chunk
                let mut packed = Vec::with_capacity(ends.len() + 1 + ids.len());
                packed.push(ends.len() as u32);
                packed.extend(ends);
                packed.extend(ids);
                packed
            })
            .collect();
        let mut ids = Vec::new();
        let mut offsets = vec![0usize];
        for p in parts {
            let n = p[0] as usize;
            let base = ids.len();
            offsets.extend(p[1..=n].iter().map(|&e| base + e as usize));
            ids.extend_from_slice(&p[n + 1..]);
        }
        (ids, offsets)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StaticEmbedError {
    #[error("token table of {0} floats is not a whole number of rows of {1}")]
    Table(usize, usize),
    #[error("{0} token weights for a table of {1} tokens")]
    Weights(usize, usize),
    #[error("offsets must start at 0, never decrease and end at the number of ids ({0})")]
    Offsets(usize),
    #[error("token id {0} is outside the table ({1} tokens)")]
    Id(u32, usize),
}

/// Texts as token ids: text i is `ids[offsets[i]..offsets[i + 1]]`. Returns one unit-length row of
/// `dim` floats per text (`sum_t w[t] v[t]` normalised; a text with no weighted token gets zeros).
pub fn pool(
    table: &[f32],
    dim: usize,
    weights: &[f32],
    ids: &[u32],
    offsets: &[usize],
) -> Result<Vec<f32>, StaticEmbedError> {
    if dim == 0 || !table.len().is_multiple_of(dim) {
        return Err(StaticEmbedError::Table(table.len(), dim));
    }
    let n_tokens = table.len() / dim;
    if weights.len() != n_tokens {
        return Err(StaticEmbedError::Weights(weights.len(), n_tokens));
    }
    let ok_offsets = offsets.first() == Some(&0)
        && offsets.last() == Some(&ids.len())
        && offsets.windows(2).all(|w| w[0] <= w[1]);
    if !ok_offsets {
        return Err(StaticEmbedError::Offsets(ids.len()));
    }
    if let Some(&bad) = ids.iter().find(|&&t| t as usize >= n_tokens) {
        return Err(StaticEmbedError::Id(bad, n_tokens));
    }
    let n = offsets.len() - 1;
    let mut out = vec![0f32; n * dim];
    out.par_chunks_mut(dim)
        .with_min_len(256)
        .enumerate()
        .for_each(|(i, row)| {
            let mut acc = vec![0f64; dim];
            let mut total = 0f64;
            for &t in &ids[offsets[i]..offsets[i + 1]] {
                let w = weights[t as usize] as f64;
                total += w;
                let v = &table[t as usize * dim..(t as usize + 1) * dim];
                for (a, &x) in acc.iter_mut().zip(v) {
                    *a += w * x as f64;
                }
            }
            if total <= 0.0 {
                return;
            }
            let norm = acc
                .iter()
                .map(|a| (a / total) * (a / total))
                .sum::<f64>()
                .sqrt();
            if norm > 0.0 {
                for (r, a) in row.iter_mut().zip(&acc) {
                    *r = (a / total / norm) as f32;
                }
            }
        });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_mean_then_unit_length() {
        let table = [1.0, 0.0, 0.0, 1.0, 3.0, 4.0];
        let weights = [1.0, 3.0, 0.0];
        let out = pool(&table, 2, &weights, &[0, 1, 2, 2, 0], &[0, 2, 3, 3, 5]).unwrap();
        let r = 10f32.sqrt();
        // the mean is divided by its norm in f64, so the last bit may differ from f32 maths
        for (got, want) in out[0..2].iter().zip([1.0 / r, 3.0 / r]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
        assert_eq!(&out[2..4], &[0.0, 0.0]); // only a zero-weight token
        assert_eq!(&out[4..6], &[0.0, 0.0]); // no token at all
        assert_eq!(&out[6..8], &[1.0, 0.0]);
    }

    #[test]
    fn wordpiece_splits_words_pieces_and_punctuation() {
        let vocab = [
            "[PAD]", "[UNK]", "debug", "##ging", "a", "!", "py", "##thon", "##s",
        ];
        let wp = WordPiece::new(&vocab).unwrap();
        let mut out = Vec::new();
        wp.encode("Debugging a\tPython!  zzz pythons\x07", &mut out);
        assert_eq!(out, vec![2, 3, 4, 6, 7, 5, 1, 6, 7, 8]);
        let (ids, offsets) = wp.encode_many(&["a", "", "a a"]);
        assert_eq!(ids, vec![4, 4, 4]);
        assert_eq!(offsets, vec![0, 1, 1, 3]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let t = [0.0; 6];
        assert_eq!(
            pool(&t, 4, &[1.0], &[], &[0]),
            Err(StaticEmbedError::Table(6, 4))
        );
        assert_eq!(
            pool(&t, 2, &[1.0], &[], &[0]),
            Err(StaticEmbedError::Weights(1, 3))
        );
        let w = [1.0; 3];
        assert_eq!(
            pool(&t, 2, &w, &[0], &[0, 2]),
            Err(StaticEmbedError::Offsets(1))
        );
        assert_eq!(
            pool(&t, 2, &w, &[3], &[0, 1]),
            Err(StaticEmbedError::Id(3, 3))
        );
    }
}
