//! A bounded-time mutation fuzzer for `anpi_jma::parse_telegram` that needs only stable Rust: the
//! fallback of `scripts/fuzz-jma.sh` where nightly (and so cargo-fuzz/libFuzzer) is unavailable.
//!
//! ```sh
//! cargo run --release -p anpi-jma --example fuzz_stable -- [OPTIONS] SEED_DIR_OR_FILE...
//!   --seconds N     run for N seconds (default 60)
//!   --runs N        stop after N mutated inputs (whichever comes first)
//!   --seed S        RNG seed (default: from the clock; always printed)
//!   --timeout N     one input taking longer than N seconds is a failure (default 10)
//!   --max-len N     inputs are cut to N bytes (default 262144)
//!   --artifacts DIR where failing inputs are written (default crates/anpi-jma/fuzz/artifacts/parse_telegram)
//!   --reproduce     run each given file once, as is (no mutation), and report
//! ```
//!
//! Not coverage-guided: it mutates the seed telegrams (byte flips, truncations, splices of two
//! telegrams, element duplication and removal, XML fragments, JMA values and words swapped for
//! others) and keeps mutants that still parse as further seeds, so that normalisation sees
//! damaged-but-valid telegrams, not only parse errors. Every input goes through
//! `fuzz/invariants.rs` (the same checks as the cargo-fuzz target). The same seed and seed
//! files give the same sequence of inputs. A failing input is written to the artifacts folder
//! (reproduce it with `--reproduce FILE`, or `cargo +nightly fuzz run parse_telegram FILE`).

// A command-line tool: it stops with a message on a bad argument and times its run by the wall clock.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[path = "../fuzz/invariants.rs"]
mod invariants;

struct Options {
    seconds: u64,
    runs: Option<u64>,
    seed: Option<u64>,
    timeout: u64,
    max_len: usize,
    artifacts: PathBuf,
    reproduce: bool,
    inputs: Vec<PathBuf>,
}

fn usage() -> ! {
    eprintln!(
        "usage: fuzz_stable [--seconds N] [--runs N] [--seed S] [--timeout N] [--max-len N] \
         [--artifacts DIR] [--reproduce] SEED_DIR_OR_FILE..."
    );
    std::process::exit(2)
}

fn options() -> Options {
    let mut o = Options {
        seconds: 60,
        runs: None,
        seed: None,
        timeout: 10,
        max_len: 262_144,
        artifacts: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/artifacts/parse_telegram"),
        reproduce: false,
        inputs: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut num = |what: &str| -> u64 {
            let v = args.next().unwrap_or_else(|| usage());
            let v = v.trim();
            let parsed = match v.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => v.parse(),
            };
            parsed.unwrap_or_else(|_| {
                eprintln!("{what}: not a number: {v}");
                usage()
            })
        };
        match arg.as_str() {
            "--seconds" => o.seconds = num("--seconds"),
            "--runs" => o.runs = Some(num("--runs")),
            "--seed" => o.seed = Some(num("--seed")),
            "--timeout" => o.timeout = num("--timeout").max(1),
            "--max-len" => o.max_len = num("--max-len").max(1) as usize,
            "--artifacts" => o.artifacts = PathBuf::from(args.next().unwrap_or_else(|| usage())),
            "--reproduce" => o.reproduce = true,
            "-h" | "--help" => usage(),
            s if s.starts_with('-') => usage(),
            s => o.inputs.push(PathBuf::from(s)),
        }
    }
    if o.inputs.is_empty() {
        usage()
    }
    o
}

/// Files named on the command line, and the files directly inside named folders, sorted by path.
fn input_files(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            inside.sort();
            files.extend(inside);
        } else if p.is_file() {
            files.push(p.clone());
        } else {
            eprintln!("warning: {} does not exist; ignored", p.display());
        }
    }
    files
}

/// splitmix64: small, fast, and the same on every platform.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (0 when n is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// XML fragments inserted at element boundaries.
const FRAGMENTS: &[&str] = &[
    "<Item>",
    "</Item>",
    "<Area>",
    "</Area>",
    "<Areas>",
    "</Areas>",
    "<Code>",
    "</Code>",
    "<Name>",
    "</Name>",
    "<Kind>",
    "</Kind>",
    "<Pref>",
    "</Pref>",
    "<City>",
    "</City>",
    "<MaxInt>",
    "</MaxInt>",
    "<Property>",
    "</Property>",
    "<Status>",
    "</Status>",
    "<Body>",
    "</Body>",
    "<Head>",
    "</Head>",
    "<Control>",
    "</Control>",
    "<Report>",
    "</Report>",
    "<Warning type=\"気象警報・注意報（市町村等）\">",
    "</Warning>",
    "<![CDATA[",
    "]]>",
    "<![CDATA[<Code>13</Code>]]>",
    "<!-- comment -->",
    "<?pi data?>",
    "&amp;",
    "&lt;",
    "&gt;",
    "&quot;",
    "&#x41;",
    "&#0;",
    "&#x110000;",
    "&#xFFFFFFFF;",
    "&#99999999999;",
    "&undefined;",
    "&",
    "<",
    ">",
    "</>",
    "<a/>",
    "<a b='1' b='2'/>",
    "<!DOCTYPE Report [<!ENTITY e \"&#x3C;Code&#x3E;13&#x3C;/Code&#x3E;\">]>",
    "&e;",
    "<Code type=\"気象・地震・火山情報／市町村等\">1310400</Code>",
    "<Area><Name>東京都</Name><Code>13</Code></Area>",
    "<Pref><Name>宮城県</Name><Code>04</Code><MaxInt>7</MaxInt></Pref>",
    "<City><Name>栗原市</Name><Code>0421300</Code><MaxInt>7</MaxInt></City>",
    "<MaxInt>7</MaxInt>",
    "<MaxInt>5-</MaxInt>",
    "<MaxInt>over</MaxInt>",
    "<MaxInt></MaxInt>",
    "<Condition>震度５弱以上未入電</Condition>",
    "<ForecastInt bound=\"以上\"><From>5-</From><To>over</To></ForecastInt>",
    "<ForecastInt><From>7</From><To>4</To></ForecastInt>",
    "<Status>解除</Status>",
    "<Status>発表</Status>",
    "<Status>継続</Status>",
    "<Status>特別警報から警報</Status>",
    "<Status>なし</Status>",
    "<Kind><Name>大津波警報</Name><Code>52</Code></Kind>",
    "<Kind><Name>大雨特別警報</Name><Code>33</Code><Status>発表</Status></Kind>",
    "<Kind><Name>レベル５（避難）</Name><Code>15</Code></Kind>",
    "<Code>99</Code>",
    "<Code>00</Code>",
    "<Code>4800000</Code>",
    "<Code>0599900</Code>",
    "<Code>9380</Code>",
    "<Code>１３</Code>",
    "<Code>802</Code>",
    "<Code></Code>",
    "<Serial>4294967296</Serial>",
    "<Serial>-1</Serial>",
    "<EventID></EventID>",
    "<InfoType>取消</InfoType>",
    "<InfoType>訂正</InfoType>",
    "<Status>訓練</Status>",
    "<DateTime>9999-12-31T23:59:59+14:00</DateTime>",
    "<DateTime>0000-01-01T00:00:00-14:00</DateTime>",
    "<ReportDateTime>+275760-09-13T00:00:00Z</ReportDateTime>",
    "<TargetDateTime>2024-02-30T25:61:61</TargetDateTime>",
    " xmlns=\"http://xml.kishou.go.jp/jmaxml1/\"",
    " xmlns=\"urn:x\"",
    " xmlns:jmx=\"\"",
    " xmlns=\"http://xml.kishou.go.jp/jmaxml1/body/seismology1/\"",
    " xmlns=\"http://xml.kishou.go.jp/jmaxml1/body/meteorology1/\"",
    " xmlns=\"http://xml.kishou.go.jp/jmaxml1/body/volcanology1/\"",
    " type=\"\"",
    " refID=\"1\"",
    " condition=\"不明\"",
    "\u{FEFF}",
    "\u{0}",
    "\r\n",
];

/// Replacement texts for element content.
const VALUES: &[&str] = &[
    "",
    " ",
    "\u{3000}",
    "0",
    "1",
    "4",
    "5-",
    "5+",
    "6-",
    "6+",
    "7",
    "8",
    "over",
    "不明",
    "5弱",
    "６強",
    "震度７",
    "震度５弱以上未入電",
    "-1",
    "4294967295",
    "4294967296",
    "99999999999999999999999999",
    "1310400",
    "13104",
    "1310",
    "13",
    "270000",
    "016010",
    "9340",
    "9380",
    "802",
    "100",
    "0000000",
    "4799999",
    "0599900",
    "01",
    "47",
    "48",
    "00",
    "９９",
    "21",
    "52",
    "53",
    "51",
    "62",
    "71",
    "33",
    "03",
    "00000000000000",
    "2147483648",
    "レベル１",
    "レベル５（避難）",
    "噴火警報（居住地域）",
    "火口周辺危険",
    "入山危険",
    "特別警報",
    "警報",
    "注意報",
    "危険警報",
    "大雨特別警報",
    "解除",
    "発表",
    "継続",
    "なし",
    "取消",
    "訂正",
    "遅延",
    "訓練",
    "通常",
    "試験",
    "CCA",
    "大津波警報",
    "津波警報",
    "津波注意報",
    "津波予報（若干の海面変動）",
    "警戒",
    "東京都",
    "伊豆諸島",
    "北海道太平洋沿岸東部",
    "東京都（伊豆諸島）",
    "陸奥湾",
    "有明・八代海",
    "𠮷",
    "\u{202E}",
    "\u{0}",
    "2024-01-01T00:00:00Z",
    "2024-01-01T00:00:00",
    "9999-12-31T23:59:59-14:00",
    "+10000-01-01T00:00:00Z",
    "1970-01-01T00:00:00.999999999999Z",
];

/// Words swapped for another of their group: statuses, info types, titles (which pick the
/// normaliser), warning states and levels.
const WORD_GROUPS: &[&[&str]] = &[
    &["通常", "訓練", "試験"],
    &["発表", "訂正", "遅延", "取消"],
    &[
        "震度速報",
        "震源・震度に関する情報",
        "緊急地震速報（警報）",
        "津波警報・注意報・予報",
        "津波情報",
        "気象警報・注意報",
        "気象特別警報・警報・注意報",
        "土砂災害警戒情報",
        "記録的短時間大雨情報",
        "噴火警報・予報",
        "震源に関する情報",
        "気象警報・注意報（Ｈ２７）",
    ],
    &["発表", "継続", "解除", "なし", "特別警報から警報", "警報から注意報", "警戒", "解除"],
    &["特別警報", "警報", "注意報", "危険警報"],
    &["大津波警報", "津波警報", "津波注意報", "津波予報（若干の海面変動）", "警報解除"],
    &["5-", "5+", "6-", "6+", "7", "1", "over"],
];

/// Byte ranges of elements `<Name ...>...</Name>` (first matching close tag) starting at `<`
/// positions; at most a few tries, `None` if none found.
fn random_element(rng: &mut Rng, data: &[u8]) -> Option<(usize, usize)> {
    for _ in 0..8 {
        let start = find_from(data, b"<", rng.below(data.len()))?;
        let name_end = data[start + 1..].iter().position(|b| matches!(b, b' ' | b'>' | b'/' | b'\t' | b'\r' | b'\n')).map(|p| start + 1 + p)?;
        let name = &data[start + 1..name_end];
        if name.is_empty() || matches!(name[0], b'/' | b'?' | b'!') {
            continue;
        }
        let mut close = b"</".to_vec();
        close.extend_from_slice(name);
        close.push(b'>');
        if let Some(end) = find_from(data, &close, name_end) {
            return Some((start, end + close.len()));
        }
    }
    None
}

/// Text content `>text<` of a random element: the range of `text`.
fn random_text(rng: &mut Rng, data: &[u8]) -> Option<(usize, usize)> {
    for _ in 0..8 {
        let gt = find_from(data, b">", rng.below(data.len()))?;
        let lt = find_from(data, b"<", gt + 1)?;
        if lt > gt + 1 && !data[gt + 1..lt].iter().all(u8::is_ascii_whitespace) {
            return Some((gt + 1, lt));
        }
    }
    None
}

fn find_from(data: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if from >= data.len() || needle.is_empty() {
        return None;
    }
    data[from..].windows(needle.len()).position(|w| w == needle).map(|p| from + p)
}

/// A `<` position (an element boundary), or any position when there is none.
fn boundary(rng: &mut Rng, data: &[u8]) -> usize {
    find_from(data, b"<", rng.below(data.len())).unwrap_or_else(|| rng.below(data.len() + 1))
}

/// Applies one random mutation to `data`; `other` is a second input for splices.
fn mutate_once(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    let len = data.len();
    match rng.below(16) {
        // Bit flip.
        0 if len > 0 => {
            let i = rng.below(len);
            data[i] ^= 1 << rng.below(8);
        }
        // Interesting byte.
        1 if len > 0 => {
            let i = rng.below(len);
            data[i] = *rng.pick(b"<>&\"'/=;:\0 \t\n0123456789-+\xff\xe3\x80\xef");
        }
        // Truncation.
        2 => data.truncate(rng.below(len + 1)),
        // Deletion of a range.
        3 if len > 0 => {
            let i = rng.below(len);
            let j = (i + 1 + rng.below(64)).min(len);
            data.drain(i..j);
        }
        // Duplication of a range.
        4 if len > 0 => {
            let i = rng.below(len);
            let j = (i + 1 + rng.below(256)).min(len);
            let chunk = data[i..j].to_vec();
            let at = rng.below(len + 1);
            data.splice(at..at, chunk);
        }
        // Splice: the head of this input, the tail of the other (at element boundaries mostly).
        5 if !other.is_empty() => {
            let i = if rng.chance(2) { boundary(rng, data) } else { rng.below(len + 1) };
            let j = if rng.chance(2) { boundary(rng, other) } else { rng.below(other.len()) };
            data.truncate(i);
            data.extend_from_slice(&other[j.min(other.len())..]);
        }
        // An element of the other input inserted here.
        6 if !other.is_empty() => {
            if let Some((s, e)) = random_element(rng, other) {
                let at = boundary(rng, data);
                data.splice(at..at, other[s..e].iter().copied());
            }
        }
        // Element (tag) duplication, sometimes several times.
        7 | 8 if len > 0 => {
            if let Some((s, e)) = random_element(rng, data) {
                let copies = if rng.chance(8) { 1 + rng.below(16) } else { 1 };
                let element = data[s..e].to_vec();
                for _ in 0..copies {
                    data.splice(e..e, element.iter().copied());
                }
            }
        }
        // Element removal.
        9 if len > 0 => {
            if let Some((s, e)) = random_element(rng, data) {
                data.drain(s..e);
            }
        }
        // XML fragment at an element boundary.
        10 | 11 => {
            let at = boundary(rng, data);
            data.splice(at..at, rng.pick(FRAGMENTS).bytes());
        }
        // Element text replaced by an interesting value.
        12 | 13 if len > 0 => {
            if let Some((s, e)) = random_text(rng, data) {
                data.splice(s..e, rng.pick(VALUES).bytes());
            }
        }
        // A JMA word swapped for another of its group.
        14 if len > 0 => {
            let group = *rng.pick(WORD_GROUPS);
            let from = rng.pick(group).as_bytes();
            let to = rng.pick(group).as_bytes();
            if let Some(i) = find_from(data, from, rng.below(len)).or_else(|| find_from(data, from, 0)) {
                data.splice(i..i + from.len(), to.iter().copied());
            }
        }
        // A run of digits replaced by another number.
        _ if len > 0 => {
            if let Some(i) = (rng.below(len)..len).find(|&i| data[i].is_ascii_digit()) {
                let j = (i..len).find(|&j| !data[j].is_ascii_digit()).unwrap_or(len);
                let n = match rng.below(4) {
                    0 => rng.next().to_string(),
                    1 => rng.below(100).to_string(),
                    2 => format!("{:0width$}", rng.below(10_000_000), width = j - i),
                    _ => "9".repeat(1 + rng.below(40)),
                };
                data.splice(i..j, n.bytes());
            }
        }
        _ => data.extend_from_slice(rng.pick(FRAGMENTS).as_bytes()),
    }
}

/// Short, stable name for an input (FNV-1a 64).
fn digest(data: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn save_artifact(dir: &Path, prefix: &str, data: &[u8]) -> PathBuf {
    let path = dir.join(format!("{prefix}-{}", digest(data)));
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, data)) {
        eprintln!("could not write {}: {e}", path.display());
    }
    path
}

fn run_one(data: &[u8]) -> Result<bool, String> {
    std::panic::catch_unwind(|| invariants::parse_and_check(data))
        .map_err(|p| p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_else(|| "panic".into()))
}

fn reproduce(o: &Options) -> ! {
    let mut failed = 0;
    for file in input_files(&o.inputs) {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        match run_one(&data) {
            Ok(parsed) => eprintln!("ok ({}): {}", if parsed { "parsed" } else { "error" }, file.display()),
            Err(msg) => {
                failed += 1;
                eprintln!("FAILED: {}: {msg}", file.display());
            }
        }
    }
    std::process::exit(if failed > 0 { 1 } else { 0 })
}

fn main() {
    let o = options();
    if o.reproduce {
        reproduce(&o);
    }
    let seed = o.seed.unwrap_or_else(|| {
        let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        t.as_nanos() as u64 ^ u64::from(std::process::id()).rotate_left(32)
    });
    let mut rng = Rng(seed);

    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for file in input_files(&o.inputs) {
        let mut data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        data.truncate(o.max_len);
        seeds.push(data);
    }
    if seeds.is_empty() {
        eprintln!("no seed inputs found in {:?}", o.inputs);
        std::process::exit(2);
    }
    eprintln!(
        "fuzz_stable: seed={seed:#018x} ({} seed inputs, {} s, timeout {} s, max_len {}); \
         reproduce this run with --seed {seed:#018x}",
        seeds.len(),
        o.seconds,
        o.timeout,
        o.max_len
    );

    // Watchdog: an input that runs longer than the timeout is a failure too.
    let current: Arc<Mutex<Arc<Vec<u8>>>> = Arc::new(Mutex::new(Arc::new(Vec::new())));
    let progress = Arc::new(AtomicU64::new(0));
    {
        let (current, progress) = (current.clone(), progress.clone());
        let (timeout, artifacts) = (Duration::from_secs(o.timeout), o.artifacts.clone());
        std::thread::spawn(move || {
            let mut last = u64::MAX;
            let mut since = Instant::now();
            loop {
                std::thread::sleep(Duration::from_millis(250));
                let now = progress.load(Ordering::Relaxed);
                if now != last {
                    (last, since) = (now, Instant::now());
                } else if since.elapsed() > timeout {
                    let data = current.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    let path = save_artifact(&artifacts, "timeout", &data);
                    eprintln!(
                        "FAILED: input {now} ran longer than {timeout:?} (seed={seed:#018x}); \
                         input saved to {}",
                        path.display()
                    );
                    std::process::exit(1);
                }
            }
        });
    }

    // The seeds themselves first, then mutants until the time (or run count) is up.
    let start = Instant::now();
    let deadline = start + Duration::from_secs(o.seconds);
    let mut pool: Vec<Vec<u8>> = Vec::new(); // mutants that still parse
    let (mut execs, mut parsed) = (0u64, 0u64);
    let mut next_report = start + Duration::from_secs(10);
    let mut index = 0usize;
    loop {
        let input: Vec<u8> = if index < seeds.len() {
            index += 1;
            seeds[index - 1].clone()
        } else {
            if Instant::now() >= deadline || o.runs.is_some_and(|r| execs >= r + seeds.len() as u64) {
                break;
            }
            let from_pool = !pool.is_empty() && rng.chance(3);
            let mut data = if from_pool { rng.pick(&pool).clone() } else { rng.pick(&seeds).clone() };
            let other = if rng.chance(4) && !pool.is_empty() { rng.pick(&pool) } else { rng.pick(&seeds) };
            let stack = if rng.chance(4) { 1 + rng.below(8) } else { 1 + rng.below(2) };
            for _ in 0..stack {
                mutate_once(&mut rng, &mut data, other);
            }
            data.truncate(o.max_len);
            data
        };
        let input = Arc::new(input);
        *current.lock().unwrap_or_else(|e| e.into_inner()) = input.clone();
        progress.store(execs, Ordering::Relaxed);
        match run_one(&input) {
            Ok(true) => {
                parsed += 1;
                if index >= seeds.len() && input.len() <= o.max_len / 2 {
                    if pool.len() < 512 {
                        pool.push(input.to_vec());
                    } else if rng.chance(4) {
                        let i = rng.below(pool.len());
                        pool[i] = input.to_vec();
                    }
                }
            }
            Ok(false) => {}
            Err(msg) => {
                let path = save_artifact(&o.artifacts, "crash", &input);
                eprintln!(
                    "FAILED after {execs} inputs (seed={seed:#018x}): {msg}\n\
                     input ({} bytes) saved to {}\n\
                     reproduce: cargo run -p anpi-jma --example fuzz_stable -- --reproduce {}",
                    input.len(),
                    path.display(),
                    path.display()
                );
                std::process::exit(1);
            }
        }
        execs += 1;
        let now = Instant::now();
        if now >= next_report {
            let secs = now.duration_since(start).as_secs_f64();
            eprintln!("#{execs} {:.0} exec/s, {parsed} parsed, pool {}", execs as f64 / secs, pool.len());
            next_report = now + Duration::from_secs(10);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "fuzz_stable: done: {execs} inputs in {secs:.1} s ({:.0} exec/s), {parsed} parsed, \
         {} jmaxml panics caught by parse_telegram, no failure (seed={seed:#018x})",
        execs as f64 / secs.max(0.001),
        invariants::CAUGHT_JMAXML_PANICS.load(Ordering::Relaxed)
    );
}
