//! A pretrained ResNet from a folder in the Hugging Face layout: a tiny,
//! randomly initialised checkpoint written here with the `transformers`
//! tensor names (listed by hand, not by the code under test) is loaded,
//! runs, and trains or stays frozen as asked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use sponge_policy::pretrained::{Vision, load_into};
use sponge_policy::tokenizer::tokenize;
use sponge_policy::{Observation, Policy, PolicyConfig};

/// `(name, shape)` of a ResNet with a stem of 8 channels and two stages
/// (8 channels × 1 block, 16 channels × 2 blocks), as transformers names them.
fn tiny_resnet_tensors() -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    let mut conv_norm = |prefix: &str, cout: usize, cin: usize, k: usize| {
        out.push((format!("{prefix}.convolution.weight"), vec![cout, cin, k, k]));
        for stat in ["weight", "bias", "running_mean", "running_var"] {
            out.push((format!("{prefix}.normalization.{stat}"), vec![cout]));
        }
    };
    conv_norm("embedder.embedder", 8, 3, 7);
    conv_norm("encoder.stages.0.layers.0.layer.0", 8, 8, 3);
    conv_norm("encoder.stages.0.layers.0.layer.1", 8, 8, 3);
    conv_norm("encoder.stages.1.layers.0.shortcut", 16, 8, 1);
    conv_norm("encoder.stages.1.layers.0.layer.0", 16, 8, 3);
    conv_norm("encoder.stages.1.layers.0.layer.1", 16, 16, 3);
    conv_norm("encoder.stages.1.layers.1.layer.0", 16, 16, 3);
    conv_norm("encoder.stages.1.layers.1.layer.1", 16, 16, 3);
    out
}

fn write_checkpoint(dir: &Path) -> HashMap<String, Tensor> {
    std::fs::create_dir_all(dir).expect("folder");
    std::fs::write(
        dir.join("config.json"),
        r#"{"model_type": "resnet", "num_channels": 3, "embedding_size": 8, "hidden_sizes": [8, 16],
            "depths": [1, 2], "layer_type": "basic", "hidden_act": "relu", "downsample_in_first_stage": false}"#,
    )
    .expect("config");
    let mut tensors = HashMap::new();
    for (name, shape) in tiny_resnet_tensors() {
        let t = if name.ends_with("running_var") {
            Tensor::rand(0.5f32, 1.5, shape, &Device::Cpu)
        } else {
            Tensor::randn(0f32, 0.2, shape, &Device::Cpu)
        }
        .expect("tensor");
        // As saved from ResNetForImageClassification: a `resnet.` prefix.
        tensors.insert(format!("resnet.{name}"), t);
    }
    tensors.insert(
        "classifier.1.weight".into(),
        Tensor::zeros((10, 16), DType::F32, &Device::Cpu).expect("classifier"),
    );
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).expect("save");
    tensors
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sponge-pretrained-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(vision: Vision) -> PolicyConfig {
    PolicyConfig {
        image_size: 64,
        d_model: 32,
        heads: 2,
        trunk_layers: 1,
        expert_layers: 1,
        horizon: 8,
        actions_per_token: 2,
        flow_steps: 2,
        vision,
        ..PolicyConfig::default()
    }
}

/// Gradient sums per variable after one flow loss.
fn gradients(policy: &Policy, varmap: &VarMap, config: &PolicyConfig) -> HashMap<String, f32> {
    let device = Device::Cpu;
    let b = 2;
    let tokens: Vec<u32> = (0..b)
        .flat_map(|_| tokenize("wipe up the ink", config.max_text_tokens))
        .collect();
    let obs = Observation {
        images: Tensor::rand(0f32, 1f32, (b, 1, 3, 64, 64), &device).expect("images"),
        tokens: Tensor::from_vec(tokens, (b, config.max_text_tokens), &device).expect("tokens"),
        state: Tensor::randn(0f32, 1f32, (b, 6), &device).expect("state"),
    };
    let actions = Tensor::randn(0f32, 1f32, (b, 8, 6), &device).expect("actions");
    let noise = Tensor::randn(0f32, 1f32, (b, 8, 6), &device).expect("noise");
    let t = Tensor::new(&[0.2f32, 0.7], &device).expect("t");
    let grads = policy
        .flow_loss(&obs, &actions, &noise, &t)
        .expect("loss")
        .backward()
        .expect("backward");
    let vars = varmap.data().lock().expect("vars");
    vars.iter()
        .map(|(name, var)| {
            let g = grads.get(var.as_tensor()).map_or(0.0, |g| {
                g.abs()
                    .and_then(|a| a.sum_all())
                    .and_then(|s| s.to_scalar::<f32>())
                    .expect("sum")
            });
            (name.clone(), g)
        })
        .collect()
}

#[test]
fn a_frozen_pretrained_resnet_is_loaded_runs_and_gets_no_gradient() {
    let dir = scratch("frozen");
    let written = write_checkpoint(&dir);
    let vision = Vision::resnet(&dir, true).expect("config.json read");
    let config = config(vision);
    let varmap = VarMap::new();
    let policy = Policy::new(
        &config,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .expect("policy");
    let loaded = load_into(&varmap, &dir).expect("loaded");
    assert_eq!(loaded, tiny_resnet_tensors().len());
    let vars = varmap.data().lock().expect("vars").clone();
    let stem = vars["image.backbone.embedder.embedder.convolution.weight"].as_tensor();
    let file = &written["resnet.embedder.embedder.convolution.weight"];
    let gap: f32 = (stem - file)
        .expect("diff")
        .abs()
        .expect("abs")
        .sum_all()
        .expect("sum")
        .to_scalar()
        .expect("f32");
    assert_eq!(gap, 0.0, "the pretrained values are in the policy");

    let grads = gradients(&policy, &varmap, &config);
    for (name, g) in &grads {
        if name.starts_with("image.backbone.") {
            assert_eq!(*g, 0.0, "{name} is frozen but has a gradient");
        } else {
            assert!(*g > 0.0 && g.is_finite(), "{name} has no gradient");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_fine_tuned_resnet_learns_but_its_batch_statistics_stay() {
    let dir = scratch("tuned");
    write_checkpoint(&dir);
    let config = config(Vision::resnet(&dir, false).expect("config"));
    let varmap = VarMap::new();
    let policy = Policy::new(
        &config,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .expect("policy");
    load_into(&varmap, &dir).expect("loaded");
    let grads = gradients(&policy, &varmap, &config);
    for (name, g) in &grads {
        if name.ends_with("running_mean") || name.ends_with("running_var") {
            assert_eq!(*g, 0.0, "{name}");
        } else {
            assert!(*g > 0.0, "{name} has no gradient");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_checkpoint_that_does_not_match_is_refused_by_name() {
    let dir = scratch("broken");
    let mut tensors = write_checkpoint(&dir);
    tensors.remove("resnet.encoder.stages.1.layers.1.layer.0.convolution.weight");
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).expect("save");
    let config = config(Vision::resnet(&dir, true).expect("config"));
    let varmap = VarMap::new();
    Policy::new(
        &config,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .expect("policy");
    let error = load_into(&varmap, &dir).expect_err("a tensor is missing");
    assert!(
        error.contains("encoder.stages.1.layers.1.layer.0.convolution.weight"),
        "{error}"
    );

    std::fs::write(
        dir.join("config.json"),
        r#"{"embedding_size": 8, "hidden_sizes": [8], "depths": [1], "layer_type": "bottleneck"}"#,
    )
    .expect("config");
    let error = Vision::resnet(&dir, true).expect_err("bottleneck blocks");
    assert!(error.contains("bottleneck"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}
