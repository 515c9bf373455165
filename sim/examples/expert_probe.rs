//! Runs the expert on a range of seeds and prints what happened.
use sponge_sim::{Env, EnvConfig};

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (from, to) = (
        args.first().copied().unwrap_or(0),
        args.get(1).copied().unwrap_or(20),
    );
    let mut ok = 0;
    let t0 = std::time::Instant::now();
    for seed in from..to {
        let mut env = Env::new(EnvConfig::default(), seed);
        let mut expert = sponge_sim::expert::Expert::new(&mut env);
        let mut last;
        let mut maxf: f64 = 0.0;
        loop {
            let a = expert.act(&mut env);
            let s = env.step(&a);
            maxf = maxf.max(s.info.mean_force_n);
            let done = s.done;
            last = Some(s);
            if done {
                break;
            }
        }
        let Some(s) = last else { continue };
        ok += s.info.success as u32;
        let kinds: Vec<_> = env.scene().spills.iter().map(|s| s.kind.name()).collect();
        println!(
            "seed {seed}: success {} steps {} frac {:?} maxF {maxf:.1} targets {:?} {:?} '{}'",
            s.info.success,
            env.steps(),
            s.info
                .spill_fractions
                .iter()
                .map(|f| (f * 100.0).round())
                .collect::<Vec<_>>(),
            env.scene().targets,
            kinds,
            env.scene().instruction
        );
    }
    println!("{ok}/{} in {:?}", to - from, t0.elapsed());
}
