//! `dlcount-pipe`: the binary. All behaviour lives in the library ([`dlcount::app`]).

fn main() {
    std::process::exit(dlcount::app::main(std::env::args_os()));
}
