//! Test helper: parses one subcommand's flag struct the way the binary does.

use clap::{Args, Parser};

#[derive(Parser)]
struct Wrapper<A: Args> {
    #[command(flatten)]
    args: A,
}

/// `A` parsed from `args` (the flags after the subcommand name), panicking on a parse error.
pub(crate) fn parse_args<A: Args>(args: &[&str]) -> A {
    let argv = std::iter::once("melfuse-train").chain(args.iter().copied());
    Wrapper::<A>::try_parse_from(argv).expect("arguments parse").args
}
