//! A pretrained ResNet from a folder in the Hugging Face layout: a tiny,
//! randomly initialised checkpoint written here with the `transformers`
//! tensor names (listed by hand, not by the code under test) is loaded,
//! runs, and trains or stays frozen as asked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use sponge_policy::pretrained::{Vision, load_into};
use sponge_policy::tokenizer::{Tokenizer, WordPiece};
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
    gradients_with(policy, varmap, config, &Tokenizer::Words)
}

fn gradients_with(
    policy: &Policy,
    varmap: &VarMap,
    config: &PolicyConfig,
    tokenizer: &Tokenizer,
) -> HashMap<String, f32> {
    let device = Device::Cpu;
    let b = 2;
    let tokens: Vec<u32> = ["wipe up the ink", "wipe the tables"]
        .iter()
        .flat_map(|t| tokenizer.encode(t, config.max_text_tokens))
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

/// `(name, shape)` of a one-layer BERT of width 16 (2 heads, MLP 32,
/// vocabulary 12, 16 positions), as transformers names them.
fn tiny_bert_tensors() -> Vec<(String, Vec<usize>)> {
    let mut out = vec![
        ("embeddings.word_embeddings.weight".to_owned(), vec![12, 16]),
        ("embeddings.position_embeddings.weight".to_owned(), vec![16, 16]),
        ("embeddings.token_type_embeddings.weight".to_owned(), vec![2, 16]),
        ("embeddings.LayerNorm.weight".to_owned(), vec![16]),
        ("embeddings.LayerNorm.bias".to_owned(), vec![16]),
    ];
    let l = "encoder.layer.0";
    for (name, shape) in [
        ("attention.self.query.weight", vec![16, 16]),
        ("attention.self.query.bias", vec![16]),
        ("attention.self.key.weight", vec![16, 16]),
        ("attention.self.key.bias", vec![16]),
        ("attention.self.value.weight", vec![16, 16]),
        ("attention.self.value.bias", vec![16]),
        ("attention.output.dense.weight", vec![16, 16]),
        ("attention.output.dense.bias", vec![16]),
        ("attention.output.LayerNorm.weight", vec![16]),
        ("attention.output.LayerNorm.bias", vec![16]),
        ("intermediate.dense.weight", vec![32, 16]),
        ("intermediate.dense.bias", vec![32]),
        ("output.dense.weight", vec![16, 32]),
        ("output.dense.bias", vec![16]),
        ("output.LayerNorm.weight", vec![16]),
        ("output.LayerNorm.bias", vec![16]),
    ] {
        out.push((format!("{l}.{name}"), shape));
    }
    out
}

fn write_bert(dir: &Path) -> HashMap<String, Tensor> {
    std::fs::create_dir_all(dir).expect("folder");
    std::fs::write(
        dir.join("config.json"),
        r#"{"model_type": "bert", "vocab_size": 12, "hidden_size": 16, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 16,
            "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu"}"#,
    )
    .expect("config");
    std::fs::write(
        dir.join("vocab.txt"),
        "[PAD]\n[UNK]\n[CLS]\n[SEP]\nwipe\nup\nthe\nink\ncoffee\nwater\ntable\n##s\n",
    )
    .expect("vocab");
    let mut tensors = HashMap::new();
    for (name, shape) in tiny_bert_tensors() {
        let t = Tensor::randn(0f32, 0.3, shape, &Device::Cpu).expect("tensor");
        tensors.insert(format!("bert.{name}"), t);
    }
    // A buffer transformers saves, which is not a weight.
    tensors.insert(
        "bert.embeddings.position_ids".into(),
        Tensor::arange(0u32, 16, &Device::Cpu).expect("ids"),
    );
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).expect("save");
    tensors
}

#[test]
fn a_frozen_pretrained_bert_is_loaded_and_gets_no_gradient() {
    use sponge_policy::bert::{BERT_PREFIX, Text};
    use sponge_policy::pretrained::load_weights;

    let dir = scratch("bert");
    let written = write_bert(&dir);
    let config = PolicyConfig {
        text: Text::bert(&dir, true).expect("config.json and vocab.txt read"),
        max_text_tokens: 8,
        ..config(Vision::Scratch)
    };
    let varmap = VarMap::new();
    let policy = Policy::new(
        &config,
        VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu),
    )
    .expect("policy");
    let loaded = load_weights(&varmap, &dir, BERT_PREFIX, "bert.").expect("loaded");
    assert_eq!(loaded, tiny_bert_tensors().len());
    let vars = varmap.data().lock().expect("vars").clone();
    let word = vars["text.bert.embeddings.word_embeddings.weight"].as_tensor();
    let gap: f32 = (word - &written["bert.embeddings.word_embeddings.weight"])
        .and_then(|d| d.abs())
        .and_then(|d| d.sum_all())
        .and_then(|s| s.to_scalar())
        .expect("gap");
    assert_eq!(gap, 0.0);
    let tokenizer = Tokenizer::WordPiece(WordPiece::load(&dir.join("vocab.txt")).expect("vocab"));
    for (name, g) in gradients_with(&policy, &varmap, &config, &tokenizer) {
        if name.starts_with(BERT_PREFIX) {
            assert_eq!(g, 0.0, "{name} is frozen but has a gradient");
        } else {
            assert!(g > 0.0 && g.is_finite(), "{name} has no gradient");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_run_with_a_pretrained_bert_keeps_its_vocabulary_and_reads_the_instruction() {
    use sponge_datasets::synth::write_small_dataset;
    use sponge_policy::agent::{Agent, Input};
    use sponge_policy::bert::Text;
    use sponge_policy::train::{TrainConfig, train};

    let root = scratch("bert-run");
    let bert = root.join("bert");
    write_bert(&bert);
    let dataset = root.join("dataset");
    write_small_dataset(&dataset, 32, &[(20, "wipe up the ink"), (20, "wipe the coffee")]).expect("dataset");
    let policy = PolicyConfig {
        text: Text::bert(&bert, true).expect("bert"),
        max_text_tokens: 8,
        image_size: 32,
        ..config(Vision::Scratch)
    };
    let run = root.join("run");
    let steps = TrainConfig {
        steps: 3,
        batch: 4,
        warmup: 1,
        validation_every: 3,
        validation_every_nth_episode: 0,
        ..TrainConfig::default()
    };
    train(&dataset, &run, &policy, &steps, &Device::Cpu, false, |_| {}).expect("train");
    // The run runs without the pretrained folder.
    std::fs::remove_dir_all(&bert).expect("remove");
    assert!(run.join("vocab.txt").is_file());
    let frame = vec![100u8; 32 * 32 * 3];
    let images = [frame.as_slice()];
    let state = [0f32; 6];
    let act = |task: &str| {
        let mut agent = Agent::load(&run, &Device::Cpu, 3).expect("load");
        agent
            .act(
                &[Input {
                    images: &images,
                    state: &state,
                    earlier: &[],
                    task,
                    environment: &[],
                }],
                1,
            )
            .expect("act")
            .remove(0)
            .remove(0)
    };
    assert_eq!(act("wipe up the ink"), act("wipe up the ink"));
    assert_ne!(
        act("wipe up the ink"),
        act("wipe the coffee"),
        "the instruction changes the chunk"
    );
    let _ = std::fs::remove_dir_all(&root);
}
