//! What to send: which operation, which key, how large a value. Pure and seeded, so a
//! run's request mix is reproducible and the samplers can be tested for their
//! distributions without a server.

/// The operation of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// Read a key.
    Get,
    /// Write a key.
    Set,
}

/// A small, fast, seedable generator (xoshiro256**, seeded through splitmix64). Load
/// generation needs speed and independence between threads, not cryptography.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator whose stream depends only on `seed`.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (`n > 0`), without modulo bias worth measuring (Lemire's
    /// multiply-shift; the bias is below 2^-64 * n).
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Zipf-distributed ranks in `1..=n`: P(k) proportional to 1 / k^s.
///
/// Rejection-inversion sampling (W. Hörmann and G. Derflinger, "Rejection-inversion to
/// generate variates from monotone discrete distributions", 1996), as in Apache
/// Commons Math: O(1) time and memory per sample for any `n`, exact for every
/// exponent `s > 0` including `s = 1`, where naive inversion formulas divide by zero.
#[derive(Debug, Clone)]
pub struct Zipf {
    n: f64,
    s: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    threshold: f64,
}

impl Zipf {
    /// A sampler over `1..=n` with exponent `s`. `n >= 1` and `s > 0` (a zero exponent
    /// is the uniform distribution; use that instead).
    pub fn new(n: u64, s: f64) -> Self {
        assert!(n >= 1 && s > 0.0 && s.is_finite());
        let mut z = Zipf {
            n: n as f64,
            s,
            h_integral_x1: 0.0,
            h_integral_n: 0.0,
            threshold: 0.0,
        };
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(n as f64 + 0.5);
        z.threshold = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        z
    }

    /// One rank in `1..=n`.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            let u = self.h_integral_n + rng.unit() * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inverse(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.threshold || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64;
            }
        }
    }

    /// `H(x)`, an integral of `h`: `((x^(1-s)) - 1) / (1 - s)`, or `ln x` when `s = 1`.
    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        helper2((1.0 - self.s) * log_x) * log_x
    }

    /// `h(x) = x^-s`.
    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }

    fn h_integral_inverse(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.s)).max(-1.0);
        (helper1(t) * x).exp()
    }
}

/// `ln(1 + x) / x`, accurate near 0.
fn helper1(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// `(e^x - 1) / x`, accurate near 0.
fn helper2(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}

/// How keys are chosen.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyDist {
    /// Every key equally likely.
    Uniform,
    /// Key `i` (0-based) has probability proportional to `1 / (i + 1)^s`: key 0 is the hottest.
    Zipf(f64),
    /// Each thread walks the keys in order from its own starting point, wrapping around.
    Sequential,
}

impl std::fmt::Display for KeyDist {
    /// The command-line spelling: `uniform`, `zipf:S`, `sequential`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyDist::Uniform => f.write_str("uniform"),
            KeyDist::Zipf(s) => write!(f, "zipf:{s}"),
            KeyDist::Sequential => f.write_str("sequential"),
        }
    }
}

/// Picks key indexes in `0..keys` for one generator thread.
#[derive(Debug, Clone)]
pub enum KeyPicker {
    /// See [`KeyDist::Uniform`].
    Uniform(u64),
    /// See [`KeyDist::Zipf`].
    Zipf(Zipf),
    /// See [`KeyDist::Sequential`]: the next index and the key count.
    Sequential {
        /// Next index to hand out.
        next: u64,
        /// Number of keys.
        keys: u64,
    },
}

impl KeyPicker {
    /// A picker over `keys` keys; `start` is where a sequential walk begins (spread the
    /// threads over the key space with it).
    pub fn new(dist: &KeyDist, keys: u64, start: u64) -> Self {
        let keys = keys.max(1);
        match *dist {
            KeyDist::Uniform => KeyPicker::Uniform(keys),
            KeyDist::Zipf(s) if s > 0.0 => KeyPicker::Zipf(Zipf::new(keys, s)),
            KeyDist::Zipf(_) => KeyPicker::Uniform(keys),
            KeyDist::Sequential => KeyPicker::Sequential {
                next: start % keys,
                keys,
            },
        }
    }

    /// The next key index.
    #[inline]
    pub fn next(&mut self, rng: &mut Rng) -> u64 {
        match self {
            KeyPicker::Uniform(n) => rng.below(*n),
            KeyPicker::Zipf(z) => z.sample(rng) - 1,
            KeyPicker::Sequential { next, keys } => {
                let k = *next;
                *next = if k + 1 >= *keys { 0 } else { k + 1 };
                k
            }
        }
    }
}

/// Writes the key for `index` into `out` (cleared first): the prefix, then the index
/// as at least 8 decimal digits, so keys of a run have one length whatever the index.
pub fn format_key(prefix: &[u8], index: u64, out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(prefix);
    let mut digits = [0u8; 20];
    let mut n = index;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = digits.len() - i;
    out.extend(std::iter::repeat_n(b'0', 8usize.saturating_sub(len)));
    out.extend_from_slice(&digits[i..]);
}

/// Value sizes: fixed or uniform in an inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueSize {
    /// Smallest size in bytes.
    pub min: usize,
    /// Largest size in bytes (equal to `min` for a fixed size).
    pub max: usize,
}

impl ValueSize {
    /// The size of the next value.
    #[inline]
    pub fn pick(&self, rng: &mut Rng) -> usize {
        if self.min == self.max {
            self.min
        } else {
            self.min + rng.below((self.max - self.min + 1) as u64) as usize
        }
    }
}

/// The mix of operations: `get` GETs for every `set` SETs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ratio {
    /// Weight of GET.
    pub get: u32,
    /// Weight of SET.
    pub set: u32,
}

impl Ratio {
    /// The next operation, drawn with the ratio's weights.
    #[inline]
    pub fn pick(&self, rng: &mut Rng) -> Op {
        if self.set == 0 {
            Op::Get
        } else if self.get == 0
            || rng.below(u64::from(self.get) + u64::from(self.set)) >= u64::from(self.get)
        {
            Op::Set
        } else {
            Op::Get
        }
    }
}

/// The bytes that values are cut from: deterministic, not all one byte, so a server
/// that compressed or deduplicated values would not get an unfair advantage.
pub fn value_pool(max: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed ^ 0x7661_6c75_6573);
    (0..max.max(1))
        .map(|_| b'a' + rng.below(26) as u8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chi-square statistic of observed counts against expected probabilities.
    fn chi_square(observed: &[u64], probs: &[f64]) -> f64 {
        let total: u64 = observed.iter().sum();
        observed
            .iter()
            .zip(probs)
            .map(|(&o, &p)| {
                let e = p * total as f64;
                (o as f64 - e).powi(2) / e
            })
            .sum()
    }

    fn zipf_probs(n: usize, s: f64) -> Vec<f64> {
        let w: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-s)).collect();
        let total: f64 = w.iter().sum();
        w.iter().map(|x| x / total).collect()
    }

    /// With 49 degrees of freedom the 99.99th percentile of chi-square is about 100;
    /// a wrong sampler (off by one rank, wrong exponent) lands in the thousands.
    #[test]
    fn zipf_matches_its_distribution_for_several_exponents() {
        let n = 50;
        for s in [0.5, 0.99, 1.0, 1.2, 2.0] {
            let z = Zipf::new(n as u64, s);
            let mut rng = Rng::new(42);
            let mut counts = vec![0u64; n];
            for _ in 0..400_000 {
                let k = z.sample(&mut rng);
                assert!((1..=n as u64).contains(&k));
                counts[(k - 1) as usize] += 1;
            }
            let chi = chi_square(&counts, &zipf_probs(n, s));
            assert!(chi < 100.0, "s={s}: chi-square {chi} over {n} ranks");
        }
    }

    #[test]
    fn zipf_on_a_large_key_space_puts_the_expected_mass_on_the_head() {
        let n = 100_000u64;
        let s = 0.99;
        let z = Zipf::new(n, s);
        let mut rng = Rng::new(7);
        let samples = 1_000_000;
        let mut head = 0u64;
        let mut max = 0;
        for _ in 0..samples {
            let k = z.sample(&mut rng);
            max = max.max(k);
            if k <= 100 {
                head += 1;
            }
        }
        let probs = zipf_probs(n as usize, s);
        let want: f64 = probs[..100].iter().sum();
        let got = head as f64 / samples as f64;
        assert!((got - want).abs() < 0.005, "head mass {got}, want {want}");
        assert!(max > n / 2, "the tail is reached too (max rank {max})");
    }

    #[test]
    fn zipf_of_one_key_always_gives_it() {
        let z = Zipf::new(1, 0.99);
        let mut rng = Rng::new(1);
        assert!((0..1000).all(|_| z.sample(&mut rng) == 1));
    }

    #[test]
    fn uniform_picker_is_uniform() {
        let mut p = KeyPicker::new(&KeyDist::Uniform, 20, 0);
        let mut rng = Rng::new(3);
        let mut counts = vec![0u64; 20];
        for _ in 0..200_000 {
            counts[p.next(&mut rng) as usize] += 1;
        }
        let chi = chi_square(&counts, &[0.05; 20]);
        assert!(chi < 60.0, "chi-square {chi}");
    }

    #[test]
    fn sequential_picker_walks_and_wraps_from_its_start() {
        let mut p = KeyPicker::new(&KeyDist::Sequential, 5, 3);
        let mut rng = Rng::new(0);
        let got: Vec<u64> = (0..7).map(|_| p.next(&mut rng)).collect();
        assert_eq!(got, vec![3, 4, 0, 1, 2, 3, 4]);
    }

    #[test]
    fn keys_have_a_fixed_width() {
        let mut out = Vec::new();
        format_key(b"key:", 42, &mut out);
        assert_eq!(out, b"key:00000042");
        format_key(b"", 0, &mut out);
        assert_eq!(out, b"00000000");
        format_key(b"k", 123_456_789_012, &mut out);
        assert_eq!(out, b"k123456789012");
    }

    #[test]
    fn ratio_and_value_sizes_follow_their_settings() {
        let mut rng = Rng::new(9);
        let r = Ratio { get: 9, set: 1 };
        let sets = (0..100_000).filter(|_| r.pick(&mut rng) == Op::Set).count();
        assert!((9_000..11_000).contains(&sets), "{sets} sets");
        assert!((0..1000).all(|_| Ratio { get: 1, set: 0 }.pick(&mut rng) == Op::Get));
        assert!((0..1000).all(|_| Ratio { get: 0, set: 1 }.pick(&mut rng) == Op::Set));
        let v = ValueSize { min: 10, max: 12 };
        let mut seen = [false; 3];
        for _ in 0..1000 {
            let n = v.pick(&mut rng);
            assert!((10..=12).contains(&n));
            seen[n - 10] = true;
        }
        assert_eq!(seen, [true; 3]);
    }

    #[test]
    fn rng_streams_differ_by_seed_and_repeat_by_seed() {
        let a: Vec<u64> = (0..4)
            .scan(Rng::new(1), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..4)
            .scan(Rng::new(1), |r, _| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..4)
            .scan(Rng::new(2), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mut r = Rng::new(5);
        assert!((0..10_000).all(|_| (0.0..1.0).contains(&r.unit())));
    }
}
