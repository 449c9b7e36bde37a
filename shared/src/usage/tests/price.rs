use super::fixtures::usage;
use crate::usage::price::{matches, parse_amount, PriceRow};
use crate::usage::{cost, Price, PriceTable, Usage};

#[test]
fn the_shipped_table_parses_with_no_problem() {
    let table = PriceTable::check(include_str!("../prices.json")).expect("no problems");
    assert_eq!(table.currency, "USD");
    assert_eq!(table.rows.len(), 203);
    assert_eq!(PriceTable::builtin(), table);
    assert!(std::ptr::eq(
        PriceTable::builtin_ref(),
        PriceTable::builtin_ref()
    ));
    let deepseek = table.find("deepseek", "deepseek-v4-pro").expect("row");
    assert_eq!(
        deepseek.off_peak.as_ref().map(|p| p.input),
        Some(660_000),
        "off-peak prices are read"
    );
}

#[test]
fn amounts() {
    let ok = [
        ("2.50", 2_500_000),
        ("0.075", 75_000),
        ("0", 0),
        ("10", 10_000_000),
        ("007.1", 7_100_000),
        ("0.000001", 1),
        ("0.123456", 123_456),
        ("18446744073709.551615", u64::MAX),
    ];
    for (s, want) in ok {
        assert_eq!(parse_amount(s), Ok(want), "{s}");
    }
    let bad = [
        "",
        ".",
        "1.",
        ".5",
        "0.0000001",
        "-1",
        "+1",
        "-0.5",
        "1e3",
        " 1",
        "1 ",
        "1,5",
        "1.2.3",
        "abc",
        "0x10",
        "18446744073709.551616",
        "99999999999999999999",
        "١",
        "NaN",
    ];
    for s in bad {
        assert!(parse_amount(s).is_err(), "{s:?}");
    }
}

#[test]
fn glob_matching() {
    let cases = [
        ("gpt-4o-20*", "gpt-4o-2024-08-06", true),
        ("gpt-4o-20*", "gpt-4o-mini-2024-07-18", false),
        (
            "*anthropic.claude-opus-5-5*",
            "us.anthropic.claude-opus-5-5-20260901-v1:0",
            true,
        ),
        (
            "*anthropic.claude-opus-5-5*",
            "anthropic.claude-opus-5-5",
            true,
        ),
        ("claude-opus-5[*", "claude-opus-5[1m]", true),
        ("claude-opus-5[*", "claude-opus-5-5", false),
        ("claude-opus-5[1m]", "claude-opus-5[1m]", true),
        ("claude-opus-5[1m]", "claude-opus-51", false),
        ("a?c", "abc", false),
        ("a?c", "a?c", true),
        ("gpt-4.1*", "gpt-401", false),
        ("a*b*c", "aXbYbZc", true),
        ("a*b*c", "aXbYbZ", false),
        ("*aab", "aaaab", true),
        ("*", "", true),
        ("**", "x", true),
        ("", "", true),
        ("", "x", false),
        ("x*", "x", true),
    ];
    for (p, name, want) in cases {
        assert_eq!(matches(p, name), want, "{p} ~ {name}");
    }
}

const TABLE: &str = r#"{"currency":"USD","unit":"per 1M tokens","rows":[
  {"kind":"k","pattern":"m-*","input":"1","output":"1","source":"s","date":"2026-01-01"},
  {"kind":"k","pattern":"m-big*","input":"2","output":"2","source":"s","date":"2026-01-01"},
  {"kind":"k","model":"m-big","input":"3","output":"3","cache_read":null,"source":"s","date":"2026-01-01","note":"unknown fields are fine"},
  {"kind":"k","pattern":"opus-5[*","input":"4","output":"4","source":"s","date":"2026-01-01"},
  {"kind":"other","model":"m-big","input":"5","output":"5","source":"s","date":"2026-01-01"}
]}"#;

#[test]
fn exact_names_first_then_patterns_in_order() {
    let t = PriceTable::parse(TABLE).expect("parses");
    let input = |kind, model| {
        t.find(kind, model)
            .map(|r: &PriceRow| r.price.input / 1_000_000)
    };
    assert_eq!(
        input("k", "m-big"),
        Some(3),
        "exact before an earlier pattern"
    );
    assert_eq!(
        input("k", "m-bigger"),
        Some(1),
        "first pattern in file order"
    );
    assert_eq!(input("k", "opus-5[1m]"), Some(4), "[ is literal");
    assert_eq!(input("k", "opus-51m]"), None);
    assert_eq!(input("other", "m-big"), Some(5), "kinds apart");
    assert_eq!(input("other", "m-x"), None);
    assert_eq!(input("none", "m-big"), None);
}

#[test]
fn the_shipped_table_picks_the_right_rows() {
    let t = PriceTable::builtin_ref();
    let input = |kind, model| t.find(kind, model).map(|r| r.price.input);
    assert_eq!(input("anthropic", "claude-opus-5"), Some(5_000_000));
    assert_eq!(input("anthropic", "claude-opus-5[1m]"), Some(5_000_000));
    assert_eq!(
        input("anthropic", "claude-opus-5-5-20260928"),
        Some(4_000_000)
    );
    assert_eq!(
        input("bedrock", "global.anthropic.claude-opus-5-5-20260928-v1:0"),
        Some(4_000_000),
        "the global row before the geographic pattern"
    );
    assert_eq!(
        input("bedrock", "eu.anthropic.claude-opus-5-5-20260928-v1:0"),
        Some(4_400_000)
    );
    assert_eq!(input("openai", "gpt-4o-mini-2024-07-18"), Some(150_000));
    assert_eq!(input("openai", "gpt-4o-2024-08-06"), Some(2_500_000));
    assert_eq!(
        t.find("openai", "text-embedding-3-small")
            .map(|r| r.price.output),
        Some(0),
        "an embedding model's null output"
    );
}

#[test]
fn every_problem_is_reported() {
    let json = r#"{"unit":"per 1K tokens","rows":[
      {"kind":"k","model":"a","pattern":"a*","input":"1","output":"1","source":"s","date":"d"},
      {"kind":"k","model":"b","input":"1.2345678","output":"-1","cache_read":0.5,"source":"s"},
      {"kind":"k","model":"c","input":"1","output":"1","above":{"input":"2","output":"2"},"source":"s","date":"d"},
      {"kind":"k","model":"d","output":"1","source":"s","date":"d"},
      {"kind":"k","model":"e","input":"1","output":"1","source":"s","date":"d"},
      {"kind":"k","model":"e","input":"2","output":"1","source":"s","date":"d"},
      "row"
    ]}"#;
    let problems = PriceTable::check(json).expect_err("problems");
    let all = problems.join("\n");
    for needle in [
        "currency: missing",
        "unit:",
        "row 0: k : needs one of model or pattern",
        "row 1: k b: input:",
        "row 1: k b: output:",
        "row 1: k b: cache_read: 0.5 is not a decimal string",
        "row 1: k b: date: missing",
        "row 2: k c: above_tokens and above go together",
        "row 3: k d: input: missing",
        "k model \"e\" is priced twice",
        "row 6: not an object",
    ] {
        assert!(all.contains(needle), "{needle:?} not in:\n{all}");
    }
    assert_eq!(problems.len(), 11, "{all}");
    assert!(PriceTable::parse(json).is_err());
    assert!(PriceTable::parse("[").is_err());
}

fn price(input: u64, output: u64) -> Price {
    Price {
        input: input * 10_000,
        output: output * 10_000,
        ..Price::default()
    }
}

#[test]
fn costs() {
    // Prices in cents per million tokens, written as `price(cents, cents)` and fields in
    // micro-units; expected costs in micro-units (millionths of a dollar).
    let claude = Price {
        cache_read: Some(300_000),
        cache_write: Some(3_750_000),
        cache_write_1h: Some(6_000_000),
        ..price(300, 1500)
    };
    let tiered = Price {
        cache_read: Some(100_000),
        cache_write: Some(2_500_000),
        above: Some((
            272_000,
            Box::new(Price {
                cache_read: Some(200_000),
                cache_write: Some(5_000_000),
                ..price(400, 1500)
            }),
        )),
        ..price(200, 1000)
    };
    let cases: Vec<(&str, Usage, Price, u64)> = vec![
        // 1000×3 + 20000×0.30 + 4000×3.75 + 2000×6 + 500×15 = 43500 (per million).
        (
            "cache reads and writes, 5m and 1h",
            usage(1000, 500, 20000, 4000, 2000, 200),
            claude.clone(),
            43_500,
        ),
        // 100×2 + 400×8 + 600×3 = 5200.
        (
            "reasoning priced apart",
            usage(100, 1000, 0, 0, 0, 600),
            Price {
                reasoning: Some(3_000_000),
                ..price(200, 800)
            },
            5_200,
        ),
        // Prompt 272000: not above. 192000×2 + 80000×0.10 + 1000×10 = 402000.
        (
            "at the threshold",
            usage(192_000, 1000, 80_000, 0, 0, 0),
            tiered.clone(),
            402_000,
        ),
        // Prompt 280000: the whole request at the tier. 200000×4 + 80000×0.20 + 1000×15.
        (
            "long-context tier",
            usage(200_000, 1000, 80_000, 0, 0, 0),
            tiered.clone(),
            831_000,
        ),
        // Cache writes count in the prompt: 271000 + 2000 written > 272000, at the tier.
        (
            "writes push the prompt over",
            usage(271_000, 0, 0, 2000, 0, 0),
            tiered.clone(),
            271_000 * 4 + 2000 * 5,
        ),
        // No cache prices: every prompt token at the input price, 180 × 1.
        (
            "missing cache prices fall back to input",
            usage(10, 0, 100, 50, 20, 0),
            price(100, 200),
            180,
        ),
        // A 1-hour write without its price costs the (5-minute) write price: 20 × 1.25.
        (
            "1-hour writes fall back to the write price",
            usage(0, 0, 0, 0, 20, 0),
            Price {
                cache_write: Some(1_250_000),
                ..price(100, 200)
            },
            25,
        ),
        (
            "rounding: half up",
            usage(500_000, 0, 0, 0, 0, 0),
            Price {
                input: 1,
                ..Price::default()
            },
            1,
        ),
        (
            "rounding: below half",
            usage(499_999, 0, 0, 0, 0, 0),
            Price {
                input: 1,
                ..Price::default()
            },
            0,
        ),
        (
            "rounding once per request",
            usage(300_000, 300_000, 0, 0, 0, 0),
            Price {
                input: 1,
                output: 1,
                ..Price::default()
            },
            1,
        ),
        ("nothing used", Usage::default(), claude.clone(), 0),
        (
            "no overflow",
            usage(u64::MAX, u64::MAX, 0, 0, 0, 0),
            price(u64::MAX / 10_000, u64::MAX / 10_000),
            u64::MAX,
        ),
    ];
    for (name, u, p, want) in cases {
        assert_eq!(cost(&u, &p), want, "{name}");
    }
}

#[test]
fn shipped_prices_cost_as_the_notes_say() {
    // Haiku 5.5's tier: over 100,000 prompt tokens every token is at the `above` prices.
    let t = PriceTable::builtin_ref();
    let haiku = &t
        .find("anthropic", "claude-haiku-5-5-20261001")
        .expect("row")
        .price;
    let small = usage(90_000, 1000, 0, 0, 0, 0);
    assert_eq!(cost(&small, haiku), 90_000 / 10 + 1000 / 2);
    let big = usage(90_000, 1000, 20_000, 0, 0, 0);
    // 90000×0.50 + 20000×0.05 + 1000×2.50
    assert_eq!(cost(&big, haiku), 45_000 + 1000 + 2500);
}
