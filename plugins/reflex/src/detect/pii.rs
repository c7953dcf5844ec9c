//! Personal data: email addresses, phone numbers, payment card numbers,
//! IBANs and US social security numbers.
//!
//! Everything here reads bytes and matches only ASCII letters, digits and
//! `+-./()@_% ` and spaces, so a span never holds a quote or a backslash
//! and a JSON string stays valid once it is replaced.

use super::{Category, Enabled, Finding};

pub fn scan(text: &str, enabled: Enabled, out: &mut Vec<Finding>) {
    let b = text.as_bytes();
    if enabled.has(Category::PiiEmail) {
        emails(b, out);
    }
    numbers(b, enabled, out);
}

/// Card numbers, SSNs, phone numbers and IBANs all hold digits: one pass
/// visits each group of digits once and hands it to every reader.
fn numbers(b: &[u8], enabled: Enabled, out: &mut Vec<Finding>) {
    let card = enabled.has(Category::PiiCard);
    let ssn = enabled.has(Category::PiiSsn);
    let phone = enabled.has(Category::PiiPhone);
    let iban = enabled.has(Category::PiiIban);
    // Where each reader may start again: never inside the run it read last,
    // whose tail is not a number of its own.
    let (mut next_simple, mut next_phone, mut next_iban) = (0, 0, 0);
    let mut i = 0;
    while let Some(off) = b[i..].iter().position(u8::is_ascii_digit) {
        let start = i + off;
        if (card || ssn) && start >= next_simple {
            let run = Run::read(b, start, simple_gap);
            if card {
                card_at(b, start, &run, out);
            }
            if ssn {
                ssn_at(b, start, &run, out);
            }
            next_simple = run.end;
        }
        if phone && start >= next_phone {
            let run = Run::read(b, start, phone_gap);
            phone_at(b, start, &run, out);
            next_phone = run.end;
        }
        // An IBAN's check digits follow its two country letters.
        if iban
            && start >= 2
            && start - 2 >= next_iban
            && let Some(end) = iban_candidate(b, start - 2)
        {
            push(out, Category::PiiIban, start - 2, end);
            next_iban = end;
        }
        i = start + b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
    }
}

fn push(out: &mut Vec<Finding>, category: Category, start: usize, end: usize) {
    out.push(Finding {
        category,
        start,
        end,
    });
}

// ---------------------------------------------------------------- email

/// File names such as `icon@2x.png` look like addresses.
const FILE_EXTENSIONS: &[&[u8]] = &[
    b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"css", b"js", b"ts", b"map", b"pdf",
];

fn emails(b: &[u8], out: &mut Vec<Finding>) {
    let local = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'%' | b'+' | b'-');
    let domain = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-');
    let mut at = 0;
    while let Some(found) = memchr::memchr(b'@', &b[at..]) {
        at += found;
        let mut start = at;
        while start > 0 && at - start < 64 && local(b[start - 1]) {
            start -= 1;
        }
        while start < at && b[start] == b'.' {
            start += 1;
        }
        let mut end = at + 1;
        while end < b.len() && end - at < 255 && domain(b[end]) {
            end += 1;
        }
        while end > at + 1 && matches!(b[end - 1], b'.' | b'-') {
            end -= 1;
        }
        if start < at && valid_domain(&b[at + 1..end]) {
            push(out, Category::PiiEmail, start, end);
        }
        at += 1;
    }
}

fn valid_domain(d: &[u8]) -> bool {
    let mut labels = 0;
    let mut last: &[u8] = &[];
    for label in d.split(|&c| c == b'.') {
        if label.is_empty()
            || label.len() > 63
            || label[0] == b'-'
            || label[label.len() - 1] == b'-'
        {
            return false;
        }
        labels += 1;
        last = label;
    }
    labels >= 2
        && (2..=24).contains(&last.len())
        && last.iter().all(u8::is_ascii_alphabetic)
        && !FILE_EXTENSIONS
            .iter()
            .any(|ext| last.eq_ignore_ascii_case(ext))
}

// ---------------------------------------------------------------- digit runs

const MAX_GROUPS: usize = 8;

/// A run of digit groups joined by separators: "06 12 34 56 78",
/// "(555) 123-4567", "4111-1111-1111-1111".
#[derive(Debug)]
struct Run {
    groups: [(usize, usize); MAX_GROUPS],
    /// The separator before each group (the first's is empty).
    gaps: [(usize, usize); MAX_GROUPS],
    count: usize,
    /// More groups than `MAX_GROUPS`: too long to be one number.
    overflow: bool,
    /// Where the run ends, past any separators it swallowed.
    end: usize,
}

impl Run {
    /// The run of groups starting with the digits at `start`, separators
    /// recognized by `gap` (the separator's length when one starts at the
    /// given position and is followed by a digit).
    fn read(b: &[u8], start: usize, gap: impl Fn(&[u8], usize) -> Option<usize>) -> Run {
        let mut run = Run {
            groups: [(0, 0); MAX_GROUPS],
            gaps: [(0, 0); MAX_GROUPS],
            count: 0,
            overflow: false,
            end: start,
        };
        let mut i = start;
        let mut gap_start = start;
        loop {
            let g = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if run.count == MAX_GROUPS {
                run.overflow = true;
            } else {
                run.groups[run.count] = (g, i);
                run.gaps[run.count] = (gap_start, g);
                run.count += 1;
            }
            run.end = i;
            match gap(b, i) {
                Some(len) => {
                    gap_start = i;
                    i += len;
                }
                None => break,
            }
        }
        run
    }

    fn lens(&self, k: usize) -> impl Iterator<Item = usize> + '_ {
        self.groups[..k].iter().map(|&(s, e)| e - s)
    }

    fn shape(&self, k: usize) -> Shape {
        let mut s = Shape {
            lens: [0; MAX_GROUPS],
            count: k,
        };
        for (i, len) in self.lens(k).enumerate() {
            s.lens[i] = len;
        }
        s
    }

    /// The digits of the first `k` groups, at most 24.
    fn digits(&self, b: &[u8], k: usize) -> Digits {
        let mut d = Digits {
            buf: [0; 24],
            len: 0,
        };
        for &(s, e) in &self.groups[..k] {
            for &c in &b[s..e] {
                if d.len < d.buf.len() {
                    d.buf[d.len] = c - b'0';
                    d.len += 1;
                }
            }
        }
        d
    }

    /// The separator bytes between group `i - 1` and group `i`.
    fn gap<'a>(&self, b: &'a [u8], i: usize) -> &'a [u8] {
        let (s, e) = self.gaps[i];
        &b[s..e]
    }

    /// Whether all separators of the first `k` groups are the same one.
    fn uniform(&self, b: &[u8], k: usize) -> bool {
        (2..k).all(|i| self.gap(b, i) == self.gap(b, 1))
    }

    /// Whether the run may be cut after `k` groups: the next separator is a
    /// plain space, not part of the number's own punctuation.
    fn can_cut(&self, b: &[u8], k: usize) -> bool {
        k == self.count || (k < self.count && self.gap(b, k) == b" ")
    }

    /// Where the first `k` groups end.
    fn end_of(&self, k: usize) -> usize {
        self.groups[k - 1].1
    }
}

struct Shape {
    lens: [usize; MAX_GROUPS],
    count: usize,
}

impl Shape {
    fn is(&self, lens: &[usize]) -> bool {
        &self.lens[..self.count] == lens
    }
}

struct Digits {
    buf: [u8; 24],
    len: usize,
}

impl Digits {
    fn all(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// Whether a number may start at `s`: not glued to a word, a decimal, a
/// path, an identifier or a price.
fn left_ok(b: &[u8], s: usize) -> bool {
    let Some(&p) = s.checked_sub(1).and_then(|i| b.get(i)) else {
        return true;
    };
    if p.is_ascii_alphanumeric() || matches!(p, b'_' | b'#' | b'$' | b'\\' | b'@' | b'&' | b'=') {
        return false;
    }
    let before = s.checked_sub(2).and_then(|i| b.get(i)).copied();
    let glued = before.is_some_and(|c| c.is_ascii_alphanumeric());
    match p {
        // "1,234": a thousands group. "7788,123-45-6789" in a CSV is not.
        b',' => !before.is_some_and(|c| c.is_ascii_digit()) || !thousands(b, s),
        b'-' | b'.' | b'/' | b'+' if glued => false,
        b':' if before.is_some_and(|c| c.is_ascii_digit()) => false,
        // A price: "€1 299,00", "£12".
        _ if b[..s].ends_with("€".as_bytes()) || b[..s].ends_with("£".as_bytes()) => false,
        _ => true,
    }
}

/// Whether the digits at `s` are exactly three, followed by no dash: the
/// group after a thousands comma.
fn thousands(b: &[u8], s: usize) -> bool {
    let digits = b[s..].iter().take_while(|c| c.is_ascii_digit()).count();
    digits == 3 && b.get(s + 3) != Some(&b'-')
}

/// Whether a number may end at `e`.
fn right_ok(b: &[u8], e: usize) -> bool {
    let Some(&n) = b.get(e) else {
        return true;
    };
    if n.is_ascii_alphanumeric() || matches!(n, b'_' | b'%' | b'@' | b'\\') {
        return false;
    }
    let digit_after = b.get(e + 1).is_some_and(u8::is_ascii_digit);
    match n {
        b',' => !thousands(b, e + 1),
        b'-' | b'.' | b'/' | b':' => !digit_after,
        _ => true,
    }
}

/// One space or one dash, then a digit.
fn simple_gap(b: &[u8], i: usize) -> Option<usize> {
    let sep = *b.get(i)?;
    (matches!(sep, b' ' | b'-') && b.get(i + 1).is_some_and(u8::is_ascii_digit)).then_some(1)
}

// ---------------------------------------------------------------- cards

fn card_at(b: &[u8], start: usize, run: &Run, out: &mut Vec<Finding>) {
    if !left_ok(b, start) || run.overflow {
        return;
    }
    for k in (1..=run.count).rev() {
        if !run.can_cut(b, k) || !right_ok(b, run.end_of(k)) {
            continue;
        }
        // Long integers abound in code and data; written in one piece, a
        // number of unusual length is a card only when announced as one.
        let shape = run.shape(k);
        let unusual = k == 1 && shape.lens[0] != 16;
        if card_shape(&shape)
            && run.uniform(b, k)
            && valid_card(run.digits(b, k).all())
            && (!unusual || card_announced(b, start))
        {
            push(out, Category::PiiCard, start, run.end_of(k));
            return;
        }
    }
}

const CARD_WORDS: &[&[u8]] = &[
    b"card",
    b"carte",
    b"karte",
    b"tarjeta",
    b"carta",
    b"cart\xc3\xa3o",
    b"cartao",
    b"kaart",
    b"karta",
    b"visa",
    b"mastercard",
    b"amex",
    b"diners",
    b"discover",
    b"jcb",
    b"unionpay",
    b"maestro",
    b"cc",
    b"pan",
];

/// Whether a card word comes shortly before `at`, digits in between allowed
/// ("card 1 of 2: ...", a CSV header). Words of five letters or more may
/// sit inside a compound ("Kreditkartennummer").
fn card_announced(b: &[u8], at: usize) -> bool {
    let from = at.saturating_sub(60);
    (from..at).any(|i| {
        let word_start = i == 0 || !b[i - 1].is_ascii_alphabetic();
        CARD_WORDS.iter().any(|w| {
            (word_start || w.len() >= 5)
                && b[i..at].len() >= w.len()
                && b[i..i + w.len()].eq_ignore_ascii_case(w)
        })
    })
}

/// Groups of four (the last one shorter), Amex 4-6-5, Diners 4-6-4, or
/// all digits together.
fn card_shape(s: &Shape) -> bool {
    let lens = &s.lens[..s.count];
    let total: usize = lens.iter().sum();
    if !(13..=19).contains(&total) {
        return false;
    }
    match lens {
        [_] => true,
        [4, 6, 5] | [4, 6, 4] => true,
        [init @ .., last] => init.iter().all(|&l| l == 4) && (1..=4).contains(last),
        [] => false,
    }
}

fn valid_card(d: &[u8]) -> bool {
    luhn(d) && issuer_accepts(d)
}

fn luhn(d: &[u8]) -> bool {
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 { y - 9 } else { y }
            } else {
                x
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether a card network issues numbers with this prefix and length.
fn issuer_accepts(d: &[u8]) -> bool {
    // The number made of the first `n` digits.
    let p = |n: usize| {
        d.iter()
            .take(n)
            .fold(0u32, |acc, &x| acc * 10 + u32::from(x))
    };
    let len = d.len();
    match d.first() {
        // Visa.
        Some(4) => matches!(len, 13 | 16 | 19),
        // Mastercard, Maestro.
        Some(5) => {
            (51..=55).contains(&p(2)) && len == 16
                || matches!(p(4), 5018 | 5020 | 5038 | 5893) && (13..=19).contains(&len)
        }
        Some(2) => (2221..=2720).contains(&p(4)) && len == 16,
        // Amex, Diners, JCB.
        Some(3) => {
            matches!(p(2), 34 | 37) && len == 15
                || ((300..=305).contains(&p(3)) || matches!(p(2), 36 | 38 | 39))
                    && (14..=19).contains(&len)
                || (3528..=3589).contains(&p(4)) && (16..=19).contains(&len)
        }
        // Discover, UnionPay, Maestro.
        Some(6) => {
            (p(4) == 6011 || (644..=649).contains(&p(3)) || p(2) == 65 || p(2) == 62)
                && (16..=19).contains(&len)
                || matches!(p(4), 6304 | 6759 | 6761 | 6762 | 6763) && (13..=19).contains(&len)
        }
        _ => false,
    }
}

// ---------------------------------------------------------------- IBAN

/// IBAN length by country (the SWIFT registry): "CCnn" entries.
const IBAN_LENGTHS: &[u8] = b"AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BR29 BY28 CH21 CR22 \
      CY28 CZ24 DE22 DK18 DO28 EE20 EG29 ES24 FI18 FO18 FR27 GB22 GE22 \
      GI23 GL18 GR27 GT28 HR21 HU28 IE22 IL23 IQ23 IS26 IT27 JO30 KW30 \
      KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 MK19 MR27 \
      MT31 MU30 NL18 NO15 PK24 PL28 PS29 PT25 QA29 RO24 RS22 SA24 SC31 \
      SE24 SI19 SK24 SM27 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20";

fn iban_length(country: [u8; 2]) -> Option<usize> {
    IBAN_LENGTHS
        .split(|&c| c == b' ')
        .find(|e| e.len() == 4 && e[..2] == country)
        .map(|e| usize::from(e[2] - b'0') * 10 + usize::from(e[3] - b'0'))
}

/// The end of a valid IBAN whose country code starts at `i`.
fn iban_candidate(b: &[u8], i: usize) -> Option<usize> {
    // A lowercase country code only after the word "iban": prose is full
    // of letters followed by digits.
    let candidate = b.get(i + 3).is_some_and(u8::is_ascii_digit)
        && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
        && (b[i].is_ascii_uppercase() && b[i + 1].is_ascii_uppercase()
            || b[i].is_ascii_lowercase()
                && b[i + 1].is_ascii_lowercase()
                && keyword_before(b, i, &[b"iban"]));
    if candidate { iban_at(b, i) } else { None }
}

/// The end of a valid IBAN starting at `start`, with or without single spaces.
fn iban_at(b: &[u8], start: usize) -> Option<usize> {
    let country = [
        b[start].to_ascii_uppercase(),
        b[start + 1].to_ascii_uppercase(),
    ];
    let len = iban_length(country)?;
    let mut chars = [0u8; 34];
    let mut n = 0;
    let mut i = start;
    while n < len {
        match b.get(i) {
            Some(&c) if c.is_ascii_alphanumeric() => {
                chars[n] = c.to_ascii_uppercase();
                n += 1;
                i += 1;
            }
            Some(b' ') if b.get(i + 1).is_some_and(u8::is_ascii_alphanumeric) => i += 1,
            _ => return None,
        }
    }
    if b.get(i).is_some_and(u8::is_ascii_alphanumeric) {
        return None;
    }
    mod97(&chars[4..len], &chars[..4]).then_some(i)
}

/// The IBAN check: the account part, then country and check digits, read
/// as one number (letters as 10..35), leaves 1 modulo 97.
fn mod97(account: &[u8], head: &[u8]) -> bool {
    let mut r: u32 = 0;
    for &c in account.iter().chain(head) {
        r = if c.is_ascii_digit() {
            (r * 10 + u32::from(c - b'0')) % 97
        } else {
            (r * 100 + u32::from(c - b'A') + 10) % 97
        };
    }
    r == 1
}

// ---------------------------------------------------------------- SSN

const SSN_WORDS: &[&[u8]] = &[b"ssn", b"social security", b"soc. sec", b"ss#", b"ss no"];

fn ssn_at(b: &[u8], start: usize, run: &Run, out: &mut Vec<Finding>) {
    // "SSN#123-45-6789": a number sign is fine after the keyword.
    let after_sign = start > 0 && b[start - 1] == b'#' && keyword_before(b, start, SSN_WORDS);
    if !(left_ok(b, start) || after_sign) || run.overflow {
        return;
    }
    for k in (1..=run.count).rev() {
        if !run.can_cut(b, k) || !right_ok(b, run.end_of(k)) {
            continue;
        }
        let shape = run.shape(k);
        let dashed = shape.is(&[3, 2, 4]) && run.uniform(b, k) && run.gap(b, 1) == b"-";
        let plain = (shape.is(&[3, 2, 4]) && run.uniform(b, k)) || shape.is(&[9]);
        if (dashed || plain && keyword_before(b, start, SSN_WORDS))
            && valid_ssn(run.digits(b, k).all())
        {
            push(out, Category::PiiSsn, start, run.end_of(k));
            return;
        }
    }
}

/// Area not 000, 666 or 9xx; group not 00; serial not 0000.
fn valid_ssn(d: &[u8]) -> bool {
    let n = |r: std::ops::Range<usize>| d[r].iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    d.len() == 9 && !matches!(n(0..3), 0 | 666 | 900..=999) && n(3..5) != 0 && n(5..9) != 0
}

// ---------------------------------------------------------------- phones

/// Words that announce a phone number, matched at a word start.
const PHONE_WORDS: &[&[u8]] = &[
    b"tel",
    b"t\xc3\xa9l",
    b"phone",
    b"fon",
    b"mobil",
    b"m\xc3\xb3vil",
    b"movil",
    b"cell",
    b"handy",
    b"portable",
    b"fax",
    b"whatsapp",
    b"sms",
    b"call",
    b"appel",
    b"llam",
    b"chiam",
    b"ligue",
    b"ligar",
    b"gsm",
    b"tlf",
    b"tfno",
    b"rufnummer",
    b"anruf",
    b"bel me",
    b"zadzwo",
    b"kom\xc3\xb3rk",
];

/// Separators inside a phone number: up to three of space, `-`, `.`, `/`,
/// `(` and `)`, at most one of `-./`, then a digit.
fn phone_gap(b: &[u8], i: usize) -> Option<usize> {
    let mut len = 0;
    let mut marks = 0;
    while let Some(&c) = b.get(i + len) {
        match c {
            b' ' | b'(' | b')' => {}
            b'-' | b'.' | b'/' => marks += 1,
            _ => break,
        }
        len += 1;
        if len > 3 {
            return None;
        }
    }
    (len > 0 && marks <= 1 && b.get(i + len).is_some_and(u8::is_ascii_digit)).then_some(len)
}

fn phone_at(b: &[u8], start: usize, run: &Run, out: &mut Vec<Finding>) {
    if run.overflow {
        return;
    }
    // A leading "+" or "(" belongs to the number.
    let (lead, plus) = match start.checked_sub(1).map(|i| b[i]) {
        Some(b'+') => (start - 1, true),
        Some(b'(') => (start - 1, false),
        _ => (start, false),
    };
    if !left_ok(b, lead) {
        return;
    }
    for k in (1..=run.count).rev() {
        if !run.can_cut(b, k) || !right_ok(b, run.end_of(k)) {
            continue;
        }
        if phone_shape(b, run, k, plus, lead) {
            push(out, Category::PiiPhone, lead, run.end_of(k));
            return;
        }
    }
}

fn phone_shape(b: &[u8], run: &Run, k: usize, plus: bool, lead: usize) -> bool {
    let shape = run.shape(k);
    let lens = &shape.lens[..k];
    let digits = run.digits(b, k);
    let d = digits.all();
    // "+33 (0)6...": the trunk zero in brackets is not dialled.
    let trunk = (1..k).any(|i| {
        run.gap(b, i).ends_with(b"(")
            && lens[i] == 1
            && d.get(lens[..i].iter().sum::<usize>()) == Some(&0)
    });
    let total = d.len() - usize::from(trunk);
    let first = d.first().copied().unwrap_or(0);
    let second = d.get(1).copied().unwrap_or(0);

    if plus {
        return first != 0 && (8..=15).contains(&total);
    }
    // Slashes and dots are separators only where no date can be read.
    let slashes = (1..k).filter(|&i| run.gap(b, i).contains(&b'/')).count();
    if slashes > 1 || (slashes == 1 && !run.gap(b, 1).contains(&b'/')) {
        return false;
    }
    let uniform = run.uniform(b, k) || bracketed_area(b, run, k);
    // International prefix 00, not a decimal such as 0.058.
    if first == 0 && second == 0 && lens[0] >= 2 {
        return k >= 2
            && uniform
            && d.get(2).is_some_and(|&x| x != 0)
            && (10..=17).contains(&total);
    }
    // North America: (NXX) NXX-XXXX, optionally with a leading 1.
    let nanp = |area: usize| {
        d.get(area).is_some_and(|&x| x >= 2) && d.get(area + 3).is_some_and(|&x| x >= 2)
    };
    if shape.is(&[3, 3, 4]) && uniform && nanp(0)
        || shape.is(&[1, 3, 3, 4]) && first == 1 && nanp(1)
    {
        return true;
    }
    // "(555) 123-4567" is written as a phone number even where the
    // exchange is not a valid one.
    if shape.is(&[3, 3, 4]) && bracketed_area(b, run, k) && first >= 2 {
        return true;
    }
    // National numbers with a trunk zero (FR, DE, UK, IT, NL...).
    if first == 0 {
        // "0 800 12 34 56": the trunk zero may stand alone.
        let rest = if lens[0] == 1 && k >= 4 {
            &lens[1..]
        } else {
            lens
        };
        let grouped = k >= 2 && uniform && rest.iter().all(|&l| l >= 2) && lens[0] <= 5;
        if grouped && (9..=12).contains(&total) {
            return true;
        }
    }
    // Spanish, Portuguese, Polish, Italian mobiles without a trunk zero.
    if (5..=9).contains(&first)
        && total == 9
        && uniform
        && (shape.is(&[3, 2, 2, 2]) || shape.is(&[2, 3, 2, 2]))
    {
        return true;
    }
    // Shapes that are phone numbers only when announced as one.
    let announced = || keyword_before(b, lead, PHONE_WORDS);
    let bare_national = k == 1
        && (first == 0 && (9..=12).contains(&total)
            || total == 10 && nanp(0)
            || total == 9 && first >= 5);
    let spaced_mobile = shape.is(&[3, 3, 3]) && uniform && first >= 5;
    let spaced_national = first != 0
        && k >= 2
        && uniform
        && (9..=11).contains(&total)
        && lens.iter().all(|&l| (2..=4).contains(&l));
    (bare_national || spaced_mobile || spaced_national) && announced()
}

/// "(555) 123-4567": brackets around the area code, then one separator.
fn bracketed_area(b: &[u8], run: &Run, k: usize) -> bool {
    k == 3
        && b.get(run.groups[0].0.wrapping_sub(1)) == Some(&b'(')
        && run.gap(b, 1).starts_with(b")")
}

/// Whether one of `words` starts a word within the 40 bytes before `at`,
/// with no digit in between (the word announces this number, not another).
fn keyword_before(b: &[u8], at: usize, words: &[&[u8]]) -> bool {
    let mut from = at.saturating_sub(40);
    if let Some(d) = b[from..at].iter().rposition(u8::is_ascii_digit) {
        from += d + 1;
    }
    let window = &b[from..at];
    (0..window.len()).any(|i| {
        let word_start = i == 0 && from == 0 || !b[from + i - 1].is_ascii_alphabetic();
        word_start
            && words.iter().any(|w| {
                window.len() - i >= w.len() && window[i..i + w.len()].eq_ignore_ascii_case(w)
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(text: &str) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        scan(text, Enabled::ALL, &mut out);
        out.iter()
            .map(|f| (f.category.name(), &text[f.start..f.end]))
            .collect()
    }

    fn only(text: &str, category: &str) -> Vec<String> {
        found(text)
            .into_iter()
            .filter(|(c, _)| *c == category)
            .map(|(_, s)| s.to_owned())
            .collect()
    }

    #[test]
    fn emails_are_found_with_their_whole_address() {
        assert_eq!(
            only("write to jane.doe+news@mail.example.org.", "pii.email"),
            ["jane.doe+news@mail.example.org"]
        );
        assert!(
            only(
                "icon@2x.png, @handle, user@localhost, pkg@1.2.3",
                "pii.email"
            )
            .is_empty()
        );
    }

    #[test]
    fn cards_need_a_valid_checksum_and_issuer() {
        assert_eq!(
            only("4111 1111 1111 1111", "pii.card"),
            ["4111 1111 1111 1111"]
        );
        assert_eq!(
            only("amex 3782-822463-10005 ok", "pii.card"),
            ["3782-822463-10005"]
        );
        assert!(only("4111 1111 1111 1112", "pii.card").is_empty());
        // Luhn-valid but no network issues 1xxx numbers.
        assert!(only("1234 5678 9012 3452", "pii.card").is_empty());
        assert_eq!(
            only("card 5555555555554444 exp 12/29", "pii.card"),
            ["5555555555554444"]
        );
    }

    #[test]
    fn ibans_need_the_country_length_and_checksum() {
        assert_eq!(
            only("IBAN: DE89 3704 0044 0532 0130 00.", "pii.iban"),
            ["DE89 3704 0044 0532 0130 00"]
        );
        assert_eq!(
            only("GB82WEST12345698765432", "pii.iban"),
            ["GB82WEST12345698765432"]
        );
        assert!(only("DE88 3704 0044 0532 0130 00", "pii.iban").is_empty());
        assert!(only("DE89 3704 0044 0532 0130 001", "pii.iban").is_empty());
    }

    #[test]
    fn ssns_follow_the_allocation_rules() {
        assert_eq!(only("SSN 123-45-6789", "pii.ssn"), ["123-45-6789"]);
        assert_eq!(only("ssn: 123456789", "pii.ssn"), ["123456789"]);
        assert!(only("666-12-3456 900-12-3456 123-00-4567 123-45-0000", "pii.ssn").is_empty());
        assert!(only("ref 123456789", "pii.ssn").is_empty());
    }

    #[test]
    fn phones_in_international_and_national_formats() {
        for phone in [
            "+33 6 12 34 56 78",
            "+44 (0)20 7946 0958",
            "+1-202-555-0143",
            "(555) 123-4567",
            "06 12 34 56 78",
            "06.12.34.56.78",
            "030 1234567",
            "020 7946 0958",
            "612 34 56 78",
        ] {
            assert_eq!(
                only(&format!("call {phone} now"), "pii.phone"),
                [phone],
                "{phone}"
            );
        }
    }

    #[test]
    fn dates_times_versions_and_ids_are_not_phones() {
        for text in [
            "2024-03-15 10:30",
            "15.03.2024",
            "01.12.2024 14.30",
            "v1.2.3",
            "192.168.1.254",
            "INV-2024-000123",
            "ISBN 978-3-16-148410-0",
            "ISBN 0-306-40615-2",
            "€1 299,00",
            "order 0612345678",
            "9400 1000 0000 0000 0000 00",
            "05/06/2024 1430",
        ] {
            assert!(only(text, "pii.phone").is_empty(), "{text}");
        }
    }
}
