//! Every trainable parameter of the policy learns: one flow-matching loss,
//! one backward pass, a non-zero gradient for each variable. (candle's
//! fused norms and softmax silently drop gradients; this catches them.)

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
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

fn observation(config: &PolicyConfig, device: &Device) -> Observation {
    let b = 2;
    let tokens: Vec<u32> = ["wipe up the ink", "wipe the table"]
        .iter()
        .flat_map(|t| tokenize(t, config.max_text_tokens))
        .collect();
    Observation {
        images: Tensor::rand(
            0f32,
            1f32,
            (b, config.cameras, 3, config.image_size, config.image_size),
            device,
        )
        .expect("images"),
        tokens: Tensor::from_vec(tokens, (b, config.max_text_tokens), device).expect("tokens"),
        state: Tensor::randn(0f32, 1f32, (b, config.state_dim), device).expect("state"),
    }
}

#[test]
fn every_trainable_parameter_receives_a_gradient() {
    assert_every_variable_learns(&small_config());
}

#[test]
fn every_trainable_parameter_of_the_conv_encoder_receives_a_gradient() {
    assert_every_variable_learns(&PolicyConfig {
        vision: sponge_policy::pretrained::Vision::Conv { keypoints: 4 },
        ..small_config()
    });
}

#[test]
fn every_trainable_parameter_of_the_l1_baseline_receives_a_gradient() {
    assert_every_variable_learns(&PolicyConfig {
        head: Head::L1,
        ..small_config()
    });
}

fn assert_every_variable_learns(config: &PolicyConfig) {
    let device = Device::Cpu;
    let config = config.clone();
    let varmap = VarMap::new();
    let policy = Policy::new(&config, VarBuilder::from_varmap(&varmap, DType::F32, &device)).expect("policy");
    let obs = observation(&config, &device);
    let actions =
        Tensor::randn(0f32, 1f32, (2, config.horizon, config.action_dim), &device).expect("actions");
    let noise = Tensor::randn(0f32, 1f32, (2, config.horizon, config.action_dim), &device).expect("noise");
    let t = Tensor::new(&[0.3f32, 0.8], &device).expect("t");
    let loss = policy.flow_loss(&obs, &actions, &noise, &t).expect("loss");
    let grads = loss.backward().expect("backward");
    let vars = varmap.data().lock().expect("varmap").clone();
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
    let varmap = VarMap::new();
    let policy = Policy::new(&config, VarBuilder::from_varmap(&varmap, DType::F32, &device)).expect("policy");
    let obs = observation(&config, &device);
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
