//! A model description (JSON) as users write it: parse, then everything `inspect` and the
//! memory check do with it. No panic, no allocation a header merely claims.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(g) = greenbench_core::graph::Graph::from_json(text) else {
        return;
    };
    let _ = greenbench_core::cost::graph_cost(&g);
    let _ = greenbench_core::memory::check_fits(&g, 4, Some(1 << 30));
    let _ = g.to_json();
});
