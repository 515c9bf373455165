//! Every trainable parameter of the policy learns: one flow-matching loss,
//! one backward pass, a non-zero gradient for each variable. (candle's
//! fused norms and softmax silently drop gradients; this catches them.)

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use sponge_policy::model::Targets;
use sponge_policy::tokenizer::tokenize;
use sponge_policy::{Head, Observation, Policy, PolicyConfig};

fn small_config() -> PolicyConfig {
    PolicyConfig {
        image_size: 32,
        cameras: 2,
        d_model: 32,
        heads: 2,
        max_text_tokens: 12,
        horizon: 8,
        actions_per_token: 2,
        flow_steps: 3,
        ..PolicyConfig::default()
    }
}

/// A randomly initialised policy and the variables it trains. candle's
/// CPU generator cannot be seeded, so every variable that candle drew at
/// random is redrawn from a seeded generator, N(0, 1/fan-in) for a matrix
/// or kernel and N(0, 0.1²) for a vector; the constant ones (the norms'
/// scales and biases) stay as they are. The same weights on every run, so
/// the bf16 tolerances below are not a lottery.
fn fresh_policy(config: &PolicyConfig, device: &Device) -> (VarMap, Policy) {
    let varmap = VarMap::new();
    let policy = Policy::new(config, VarBuilder::from_varmap(&varmap, DType::F32, device)).expect("policy");
    let mut rng = StdRng::seed_from_u64(7);
    let mut vars: Vec<_> = varmap
        .data()
        .lock()
        .expect("varmap")
        .clone()
        .into_iter()
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, var) in vars {
        let t = var.as_tensor();
        let (lo, hi) = (
            t.min_all().and_then(|m| m.to_scalar::<f32>()).expect("min"),
            t.max_all().and_then(|m| m.to_scalar::<f32>()).expect("max"),
        );
        if lo == hi {
            continue;
        }
        let fan_in: usize = t.dims().iter().skip(1).product();
        let spread = if t.rank() > 1 {
            (fan_in as f32).sqrt().recip()
        } else {
            0.1
        };
        var.set(&normal(&mut rng, 0.0, spread, t.dims(), device))
            .expect("set");
    }
    (varmap, policy)
}

/// A tensor of `shape` drawn from N(mean, spread²) by a seeded generator.
fn normal(rng: &mut StdRng, mean: f32, spread: f32, shape: &[usize], device: &Device) -> Tensor {
    let n = shape.iter().product::<usize>();
    let values: Vec<f32> = (0..n)
        .map(|_| mean + spread * rng.sample::<f32, _>(StandardNormal))
        .collect();
    Tensor::from_vec(values, shape, device).expect("normal")
}

fn observation(config: &PolicyConfig, rng: &mut StdRng, device: &Device) -> Observation {
    let b = 2;
    let tokens: Vec<u32> = ["wipe up the ink", "wipe the table"]
        .iter()
        .flat_map(|t| tokenize(t, config.max_text_tokens))
        .collect();
    Observation {
        images: normal(
            rng,
            0.5,
            0.25,
            &[b, config.cameras, 3, config.image_size, config.image_size],
            device,
        ),
        tokens: Tensor::from_vec(tokens, (b, config.max_text_tokens), device).expect("tokens"),
        state: normal(rng, 0.0, 1.0, &[b, config.state_inputs()], device),
    }
}

#[test]
fn every_trainable_parameter_receives_a_gradient() {
    assert_every_variable_learns(&small_config());
}

#[test]
fn every_trainable_parameter_of_the_conv_encoder_receives_a_gradient() {
    assert_every_variable_learns(&PolicyConfig {
        vision: sponge_policy::pretrained::Vision::Conv {
            keypoints: 4,
            instructed: 0,
        },
        ..small_config()
    });
}

#[test]
fn every_trainable_parameter_of_the_instructed_keypoints_receives_a_gradient() {
    assert_every_variable_learns(&PolicyConfig {
        vision: sponge_policy::pretrained::Vision::Conv {
            keypoints: 4,
            instructed: 2,
        },
        ..small_config()
    });
}

/// The place loss alone trains the image encoder and the keypoints placed
/// by the instruction (and the text encoder that places them), not the
/// action expert; and it is smallest when the keypoint's weights are the
/// target's.
#[test]
fn the_place_loss_trains_the_encoders_that_find_the_place_and_not_the_expert() {
    let device = Device::Cpu;
    let config = PolicyConfig {
        vision: sponge_policy::pretrained::Vision::Conv {
            keypoints: 4,
            instructed: 2,
        },
        ..small_config()
    };
    let (varmap, policy) = fresh_policy(&config, &device);
    let inputs = inputs(&config, &device);
    let place_loss = |place: &Tensor| {
        policy
            .losses(
                &inputs.obs,
                &inputs.actions,
                &inputs.noise,
                &inputs.t,
                Targets {
                    environment: None,
                    place: Some(place),
                },
            )
            .expect("losses")
            .place
            .expect("a place loss")
    };
    let loss = place_loss(&inputs.place);
    let grads = loss.backward().expect("backward");
    let vars = varmap.data().lock().expect("varmap").clone();
    let norm = |name: &str| {
        grads
            .get(vars.get(name).unwrap_or_else(|| panic!("no variable {name}")))
            .map_or(0.0, |g| {
                g.sqr()
                    .and_then(|g| g.sum_all())
                    .and_then(|g| g.to_scalar::<f32>())
                    .expect("norm")
            })
    };
    for name in [
        "image.instructed_query.weight",
        "image.instructed_place_keys",
        "image.merge0.weight",
        "image.conv0.weight",
        "token_embedding.weight",
    ] {
        assert!(norm(name) > 0.0, "{name} gets no gradient from the place loss");
    }
    for name in [
        "action_out.weight",
        "expert_norm.weight",
        "image.keypoint_in.weight",
    ] {
        assert_eq!(norm(name), 0.0, "{name} should not depend on the place");
    }
    // The keypoint's own weights as the target give the smallest loss: 0.
    let logits = policy
        .encode_with_place(&inputs.obs)
        .expect("encode")
        .1
        .expect("logits");
    let own = candle_nn::ops::softmax(&logits, 1).expect("softmax");
    let at_own = place_loss(&own).to_scalar::<f32>().expect("loss");
    let at_other = loss.to_scalar::<f32>().expect("loss");
    assert!(at_own.abs() < 1e-4 && at_other > 0.1, "{at_own} {at_other}");
}

#[test]
fn every_trainable_parameter_of_the_l1_baseline_receives_a_gradient() {
    assert_every_variable_learns(&PolicyConfig {
        head: Head::L1,
        ..small_config()
    });
}

#[test]
fn every_trainable_parameter_with_the_auxiliary_head_receives_a_gradient() {
    assert_every_variable_learns(&PolicyConfig {
        aux_targets: 4,
        ..small_config()
    });
}

#[test]
fn every_trainable_parameter_learns_through_a_bf16_copy() {
    for config in [
        small_config(),
        PolicyConfig {
            vision: sponge_policy::pretrained::Vision::Conv {
                keypoints: 4,
                instructed: 2,
            },
            aux_targets: 4,
            ..small_config()
        },
    ] {
        assert_every_variable_learns_in(&config, DType::BF16);
    }
}

/// The loss of one batch (an auxiliary target with an auxiliary head),
/// every input cast to the policy's dtype; the loss in f32.
fn batch_loss(policy: &Policy, config: &PolicyConfig, inputs: &Inputs) -> Tensor {
    let dtype = policy.dtype();
    let cast = |t: &Tensor| t.to_dtype(dtype).expect("cast");
    let obs = Observation {
        images: cast(&inputs.obs.images),
        tokens: inputs.obs.tokens.clone(),
        state: cast(&inputs.obs.state),
    };
    let (actions, noise) = (cast(&inputs.actions), cast(&inputs.noise));
    let instructed = matches!(
        config.vision,
        sponge_policy::pretrained::Vision::Conv { instructed: 1.., .. }
    );
    let environment = cast(&inputs.target);
    let targets = Targets {
        environment: (config.aux_targets > 0).then_some(&environment),
        place: instructed.then_some(&inputs.place),
    };
    let losses = policy
        .losses(&obs, &actions, &noise, &inputs.t, targets)
        .expect("losses");
    assert_eq!(losses.aux.is_some(), config.aux_targets > 0);
    assert_eq!(losses.place.is_some(), instructed);
    let mut loss = losses.flow;
    for extra in [losses.aux, losses.place].into_iter().flatten() {
        let extra = extra.to_dtype(loss.dtype()).expect("cast");
        loss = (loss + extra).expect("sum");
    }
    loss.to_dtype(DType::F32).expect("f32 loss")
}

/// One batch of inputs.
struct Inputs {
    obs: Observation,
    actions: Tensor,
    noise: Tensor,
    t: Tensor,
    target: Tensor,
    /// Weights over the places of the 1/4-size map (keypoints placed by the instruction).
    place: Tensor,
}

/// One batch of inputs from a seeded generator.
fn inputs(config: &PolicyConfig, device: &Device) -> Inputs {
    let rng = &mut StdRng::seed_from_u64(11);
    let chunk = [2, config.horizon, config.action_dim];
    Inputs {
        obs: observation(config, rng, device),
        actions: normal(rng, 0.0, 1.0, &chunk, device),
        noise: normal(rng, 0.0, 1.0, &chunk, device),
        t: Tensor::new(&[0.3f32, 0.8], device).expect("t"),
        target: normal(rng, 0.0, 1.0, &[2, config.aux_targets.max(1)], device),
        place: {
            let side = config.image_size / 4;
            let logits = normal(rng, 0.0, 2.0, &[2, side * side], device);
            candle_nn::ops::softmax(&logits, 1).expect("place weights")
        },
    }
}

fn assert_every_variable_learns(config: &PolicyConfig) {
    assert_every_variable_learns_in(config, DType::F32);
}

/// One loss computed in `dtype` (bf16: on a copy of the f32 variables
/// cast for the step, as `sponge train --precision bf16` does), one
/// backward pass: every f32 variable gets a finite, non-zero gradient. In
/// bf16, the loss and the gradients also agree with f32's to bf16's
/// precision.
fn assert_every_variable_learns_in(config: &PolicyConfig, dtype: DType) {
    let device = Device::Cpu;
    let config = config.clone();
    let (varmap, policy) = fresh_policy(&config, &device);
    let inputs = inputs(&config, &device);
    let vars = varmap.data().lock().expect("varmap").clone();
    let loss = match dtype {
        DType::F32 => batch_loss(&policy, &config, &inputs),
        _ => {
            let named: Vec<(String, candle_core::Var)> =
                vars.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
            let cast =
                sponge_policy::train::cast_model(&named, dtype, &device, |vb| Policy::new(&config, vb))
                    .expect("cast model");
            assert_eq!(cast.dtype(), dtype);
            let low = batch_loss(&cast, &config, &inputs);
            let full = batch_loss(&policy, &config, &inputs);
            let (l, f) = (
                low.to_scalar::<f32>().expect("loss"),
                full.to_scalar::<f32>().expect("loss"),
            );
            // With these seeded weights and inputs: 0.9% and 1.6% off
            // (2.9 and 5.2); 3% leaves room for another CPU's rounding.
            assert!(
                (l - f).abs() < 0.03 * f.abs(),
                "the {dtype:?} loss {l} is not the f32 loss {f} to within 3%"
            );
            let (g_low, g_full) = (
                low.backward().expect("backward"),
                full.backward().expect("backward"),
            );
            // The gradients, all variables together, point the same way.
            let (mut dot, mut nl, mut nf) = (0f64, 0f64, 0f64);
            for var in vars.values() {
                let flat = |g: &candle_core::backprop::GradStore| -> Vec<f32> {
                    g.get(var.as_tensor())
                        .map(|t| t.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("grad"))
                        .unwrap_or_default()
                };
                for (a, b) in flat(&g_low).iter().zip(flat(&g_full)) {
                    dot += f64::from(*a) * f64::from(b);
                    nl += f64::from(*a).powi(2);
                    nf += f64::from(b).powi(2);
                }
            }
            let cosine = dot / (nl.sqrt() * nf.sqrt());
            assert!(
                cosine > 0.98,
                "{dtype:?} and f32 gradients differ in direction (cosine {cosine:.4})"
            );
            low
        }
    };
    let grads = loss.backward().expect("backward");
    assert!(vars.len() > 40, "only {} variables", vars.len());
    let mut missing = Vec::new();
    for (name, var) in &vars {
        let norm = grads.get(var.as_tensor()).map(|g| {
            g.abs()
                .and_then(|a| a.sum_all())
                .and_then(|s| s.to_scalar::<f32>())
                .expect("norm")
        });
        match norm {
            Some(n) if n > 0.0 && n.is_finite() => {}
            other => missing.push(format!("{name}: {other:?}")),
        }
    }
    assert!(
        missing.is_empty(),
        "variables without a gradient:\n{}",
        missing.join("\n")
    );
}

#[test]
fn different_noise_gives_different_chunks_of_the_right_shape() {
    let device = Device::Cpu;
    let config = small_config();
    let (_, policy) = fresh_policy(&config, &device);
    let obs = observation(&config, &mut StdRng::seed_from_u64(3), &device);
    let noise = Tensor::randn(0f32, 1f32, (2, config.horizon, config.action_dim), &device).expect("noise");
    let a = policy.sample(&obs, &noise).expect("sample");
    assert_eq!(a.dims(), &[2, config.horizon, config.action_dim]);
    let again = policy.sample(&obs, &noise).expect("sample");
    let same: f32 = (&a - &again)
        .expect("diff")
        .abs()
        .expect("abs")
        .sum_all()
        .expect("sum")
        .to_scalar()
        .expect("f32");
    assert_eq!(same, 0.0, "the same noise gives the same chunk");
    let other = Tensor::randn(0f32, 1f32, (2, config.horizon, config.action_dim), &device).expect("noise");
    let b = policy.sample(&obs, &other).expect("sample");
    let diff: f32 = (&a - &b)
        .expect("diff")
        .abs()
        .expect("abs")
        .mean_all()
        .expect("mean")
        .to_scalar()
        .expect("f32");
    assert!(diff > 1e-3, "other noise, other chunk ({diff})");
}

#[test]
fn several_flow_samples_per_chunk_average_the_loss_of_each_draw() {
    let device = Device::Cpu;
    let config = small_config();
    let (_, policy) = fresh_policy(&config, &device);
    let obs = observation(&config, &mut StdRng::seed_from_u64(3), &device);
    let shape = (2, config.horizon, config.action_dim);
    let actions = Tensor::randn(0f32, 1f32, shape, &device).expect("actions");
    let (noise_a, noise_b) = (
        Tensor::randn(0f32, 1f32, shape, &device).expect("noise"),
        Tensor::randn(0f32, 1f32, shape, &device).expect("noise"),
    );
    let (t_a, t_b) = (
        Tensor::new(&[0.1f32, 0.6], &device).expect("t"),
        Tensor::new(&[0.9f32, 0.3], &device).expect("t"),
    );
    let scalar = |t: Tensor| t.to_scalar::<f32>().expect("scalar");
    let a = scalar(policy.flow_loss(&obs, &actions, &noise_a, &t_a).expect("loss"));
    let b = scalar(policy.flow_loss(&obs, &actions, &noise_b, &t_b).expect("loss"));
    assert!(
        (a - b).abs() > 1e-4,
        "two draws should give two losses ({a}, {b})"
    );
    // Each observation's two draws in a row: [obs 0 draw a, obs 0 draw b, obs 1 draw a, obs 1 draw b].
    let row = |n: &Tensor, i: usize| n.narrow(0, i, 1).expect("row");
    let noise = Tensor::cat(
        &[
            row(&noise_a, 0),
            row(&noise_b, 0),
            row(&noise_a, 1),
            row(&noise_b, 1),
        ],
        0,
    )
    .expect("noise");
    let t = Tensor::new(&[0.1f32, 0.9, 0.6, 0.3], &device).expect("t");
    let both = scalar(policy.flow_loss(&obs, &actions, &noise, &t).expect("loss"));
    assert!(
        (both - 0.5 * (a + b)).abs() < 1e-5,
        "two draws per chunk: {both}, the mean of each draw alone: {}",
        0.5 * (a + b)
    );
    // Three noise rows for two chunks is a caller's mistake, named.
    let three = noise.narrow(0, 0, 3).expect("rows");
    let err = policy
        .flow_loss(&obs, &actions, &three, &t.narrow(0, 0, 3).expect("t"))
        .expect_err("3 rows for 2 chunks");
    assert!(err.to_string().contains("3 noise rows"), "{err}");
}
