mod data;
mod pyrandom;

fn main() {}
