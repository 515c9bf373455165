//! Physics step time of one twin: arm, table, held sponge pressing on the
//! table and sliding, spill grid wiped every step.

use criterion::{Criterion, criterion_group, criterion_main};
use sponge_sim::{Env, EnvConfig};

fn bench(c: &mut Criterion) {
    let mut env = Env::new(EnvConfig::default(), 3);
    let mut expert = sponge_sim::expert::Expert::new(&mut env);
    // Get the sponge onto the table first.
    for _ in 0..90 {
        let a = expert.act(&mut env);
        env.step(&a);
    }
    c.bench_function("control_step_8_physics_steps", |b| {
        b.iter(|| {
            let a = expert.act(&mut env);
            if env.step(&a).done {
                env = Env::new(EnvConfig::default(), 3);
                expert = sponge_sim::expert::Expert::new(&mut env);
            }
        })
    });
    let _ = std::hint::black_box(env.steps());
}

criterion_group!(benches, bench);
criterion_main!(benches);
