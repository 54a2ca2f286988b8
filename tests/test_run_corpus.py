"""The proof corpus for `gradguard run`: real-looking training scripts, each run in a subprocess.

Every script in `tests/scripts/` is a standalone program written the way TensorFlow users write
them (none imports gradguard). `bug_*` scripts carry one known bug and must get its finding code;
`ok_*` scripts are healthy and must get no error-severity finding (and ideally no finding at
all). `cli_*` scripts exercise the command-line contract of DESIGN.md.

The first test that needs a run starts every run the selected tests need, in the order the tests
come, and each test waits only for its own. Corpus scripts run in worker processes
(`MAX_PARALLEL`), each going through its share one script after another with exactly what
``python -m gradguard run`` does (`corpus_worker.py`: importing TensorFlow once per worker, not
once per script, is what keeps the corpus affordable). The command-line contract runs real
``python -m gradguard run`` processes.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

SCRIPTS = Path(__file__).parent / "scripts"
WORKER = Path(__file__).parent / "corpus_worker.py"
# Corpus workers: one beside the two pytest workers on CI's two cores (the pytest worker that
# holds the corpus waits meanwhile). Two there made three busy processes for two cores: timed
# per test, the suite took 1,155 s against 1,084 s with one (2026-12-06), and a few percent
# less CPU on CI.
MAX_PARALLEL = max(1, min(2, (os.cpu_count() or 2) - 1))
TIMEOUT = 240  # seconds per script; each takes 1-10 s


@dataclasses.dataclass(frozen=True)
class Bug:
    """What `gradguard run` must say about a buggy script.

    Attributes:
      codes: Finding codes that must be present.
      also_errors: Other error-severity codes that are right for this script (e.g. the weights
        of a layer whose 1e-10 update is below float precision really are unchanged).
      mentions: Per code, a phrase its message must contain (where the gradient chain broke).
      exit: The script's own exit status (1 when the bug makes Keras raise).
      wrong: Why gradguard does not get it right yet (the test is an expected failure).
      options: `gradguard run` options the finding needs (``--activations``).
    """

    codes: tuple[str, ...]
    also_errors: tuple[str, ...] = ()
    mentions: tuple[tuple[str, str], ...] = ()
    exit: int = 0
    wrong: str | None = None
    options: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Healthy:
    """A healthy script: no error-severity finding, and ideally none at all.

    Attributes:
      false_error: Why gradguard wrongly reports an error here (an expected failure).
      false_warning: Why gradguard reports a warning here it should not (an expected failure
        of the "no finding at all" test only).
      options: `gradguard run` options to run it with (``--activations``: silent there too).
    """

    false_error: str | None = None
    false_warning: str | None = None
    options: tuple[str, ...] = ()


BUGS: dict[str, Bug] = {
    # missing-apply
    "bug_forgot_apply_gradients.py": Bug(("missing-apply",)),
    "bug_forgot_apply_gradients_tf_function.py": Bug(("missing-apply",)),
    "bug_fit_train_step_forgot_apply.py": Bug(("missing-apply",)),
    # variable-not-trained
    "bug_apply_only_head_variables.py": Bug(("variable-not-trained",)),
    "bug_extra_variable_dropped_by_zip.py": Bug(("variable-not-trained",)),
    # non-finite in a loop with no optimizer (weights moved by hand)
    "bug_manual_update_wrong_sign_tf_function.py": Bug(("non-finite",)),
    # loss-sign-flipped: a cosine loss minimized the wrong way round
    "bug_one_minus_keras_cosine_similarity_fit.py": Bug(("loss-sign-flipped",)),
    # ... and the Dice coefficient, an overlap score, minimized as it is.
    "bug_dice_coefficient_minimized_as_the_loss_fit.py": Bug(
        ("loss-sign-flipped",), mentions=(("loss-sign-flipped", "1 - dice_coef"),)
    ),
    # ... and a loss with no floor: a VAE's KL without its minus runs away below 0.
    "bug_vae_kl_without_minus_tf_function.py": Bug(
        ("loss-sign-flipped",), mentions=(("loss-sign-flipped", "KL divergence"),)
    ),
    # labels-out-of-range
    "bug_regression_sigmoid_output_fit.py": Bug(("labels-out-of-range",)),
    # Masks of 0 and 1 divided by 255 with the images: a largest label of 1/255.
    "bug_masks_divided_by_255_with_the_images_fit.py": Bug(
        ("labels-out-of-range",), mentions=(("labels-out-of-range", "1/255"),)
    ),
    "bug_multilabel_softmax_output_fit.py": Bug(
        ("labels-out-of-range",), mentions=(("labels-out-of-range", "sigmoid"),)
    ),
    # categorical_crossentropy(y_pred, y_true): the log of the labels weighed by the output.
    "bug_label_smoothing_loss_with_arguments_swapped_fit.py": Bug(
        ("labels-out-of-range",), mentions=(("labels-out-of-range", "are swapped"),)
    ),
    # gradient-misassigned
    "bug_zip_order_swapped.py": Bug(("gradient-misassigned",)),
    "bug_fit_train_step_partial_variables.py": Bug(("variable-not-trained",)),
    # Read inside the tape, the loss depending on them, never asked a gradient for.
    "bug_decoder_never_trained.py": Bug(("variable-not-trained",)),
    # none-gradient: every way of cutting the loss from the tape. All but the last make
    # Keras raise at the first apply_gradients, after gradguard has seen the gradients.
    "bug_numpy_roundtrip_eager.py": Bug(
        ("none-gradient",), mentions=(("none-gradient", "numpy"),), exit=1
    ),
    "bug_numpy_function_loss.py": Bug(
        ("none-gradient",), mentions=(("none-gradient", "numpy_function"),), exit=1
    ),
    "bug_cast_predictions_to_int.py": Bug(
        ("none-gradient",), mentions=(("none-gradient", "int32"),), exit=1
    ),
    "bug_argmax_loss.py": Bug(("none-gradient",), mentions=(("none-gradient", "argmax"),), exit=1),
    "bug_stop_gradient_dqn.py": Bug(
        ("none-gradient",), mentions=(("none-gradient", "stop_gradient"),), exit=1
    ),
    "bug_forward_pass_outside_tape.py": Bug(
        ("none-gradient",), mentions=(("none-gradient", "outside"),), exit=1
    ),
    "bug_round_inside_model.py": Bug(("none-gradient",), mentions=(("none-gradient", "round"),)),
    # Eager: no graph of the loss, but a trace of the model shows the cut inside it.
    "bug_round_inside_model_eager.py": Bug(
        ("none-gradient",), mentions=(("none-gradient", "round"),)
    ),
    # the gradient and update checks
    "bug_sign_of_prediction_loss.py": Bug(("zero-gradient",)),
    "bug_learning_rate_zero.py": Bug(("weights-unchanged",)),
    # SGD at 1e-10 moves a weight of size ~0.3 by less than its float32 spacing: the output
    # layer's kernel is, bit for bit, unchanged, so weights-unchanged is right there too.
    "bug_learning_rate_tiny.py": Bug(("update-too-small",), also_errors=("weights-unchanged",)),
    "bug_adam_learning_rate_one.py": Bug(("update-too-large",)),
    # At chance, with a suspect named: a flip that changes the label, examples scaled one by one.
    "bug_augmentation_flip_changes_label_fit.py": Bug(
        ("loss-not-decreasing",), mentions=(("loss-not-decreasing", "flip or rotate the images"),)
    ),
    "bug_rows_normalized_instead_of_features_fit.py": Bug(
        ("loss-not-decreasing",),
        mentions=(("loss-not-decreasing", "an L2 norm of exactly 1"),),
    ),
    # A dataset without .repeat() shorter than steps_per_epoch: each epoch ends when it does.
    "bug_dataset_not_repeated_steps_per_epoch_fit.py": Bug(("data-exhausted",)),
    # Tokens padded at the start (pad_sequences' default), their tags at the end.
    "bug_tags_padded_after_tokens_padded_before_fit.py": Bug(("padding-misaligned",)),
    # Classes numbered 1..C into tf.one_hot(y, C) in a train_step override: class C is lost.
    "bug_one_hot_labels_numbered_from_one_train_step.py": Bug(("labels-out-of-range",)),
    # A hand-written hinge given labels 0/1: the negatives add a constant, the model learns
    # from the positives only (and every gradient stalls at zero).
    "bug_hinge_loss_labels_zero_one_tf_function.py": Bug(("labels-out-of-range",)),
    # The paper's contrastive loss (0 = similar) on pairs labelled 1 = similar.
    "bug_contrastive_loss_labels_inverted_fit.py": Bug(("contrastive-labels-inverted",)),
    # A VAE's reconstruction averaged over the pixels, its KL summed: the posterior collapses.
    "bug_vae_reconstruction_averaged_posterior_collapse_fit.py": Bug(("posterior-collapsed",)),
    # An actor-critic's advantage R - V(s) not stopped: the actor term trains the critic.
    "bug_actor_critic_advantage_not_stopped_tf_function.py": Bug(("advantage-not-stopped",)),
    # Per-output quantile losses made in a list comprehension: every one reads the last q.
    "bug_quantile_losses_made_in_a_loop_fit.py": Bug(("loop-variable-late-bound",)),
    # A corner-format GIoU loss given center-and-size boxes: most boxes read inverted.
    "bug_giou_loss_given_center_size_boxes_fit.py": Bug(
        ("labels-out-of-range",), mentions=(("labels-out-of-range", "box corners"),)
    ),
    # A ReLU output fitted to standardized targets: the negative half cannot be predicted.
    "bug_regression_relu_output_standardized_targets_fit.py": Bug(
        ("labels-out-of-range",), mentions=(("labels-out-of-range", "a ReLU"),)
    ),
    # Embedding(mask_zero=True) over bases numbered 0..3: every A hidden from the pooling.
    "bug_mask_zero_on_a_real_token_fit.py": Bug(("zero-token-masked",)),
    # Gradient accumulation by hand, the accumulators never zeroed: every update sums them all.
    "bug_gradient_accumulators_never_reset_tf_function.py": Bug(("accumulators-not-reset",)),
    # Features and labels shuffled as two data sets, then zipped: labels of other examples.
    "bug_features_labels_shuffled_apart_zipped_fit.py": Bug(
        ("labels-uninformative",), mentions=(("labels-uninformative", "Zip them first"),)
    ),
    # The tutorial's padding mask (1 = pad) given to Keras' MultiHeadAttention (1 = keep).
    "bug_attention_mask_keeps_padding_fit.py": Bug(("attention-mask-inverted",)),
    # np.random inside a tf.function step: the same 64 indices, drawn at trace, every step.
    "bug_numpy_batch_drawn_in_tf_function.py": Bug(("batch-frozen-at-trace",)),
    # Attention pooling's softmax over the size-1 score axis: every weight 1, no gradient.
    "bug_softmax_over_size_one_axis_fit.py": Bug(("softmax-over-one",)),
    # An L1 kernel_regularizer in a hand-written loop whose loss never adds model.losses.
    "bug_regularizer_not_added_in_loop.py": Bug(("regularization-ignored",)),
    # fit's class_weight handed to a train_step override that drops data[2].
    "bug_class_weight_dropped_by_train_step_override_fit.py": Bug(("sample-weights-ignored",)),
    # ds.map(random_shift).cache(): the first epoch's shifts replayed every epoch.
    "bug_augmentation_cached_then_replayed_fit.py": Bug(("augmentation-repeated",)),
    # tf.random.uniform in a map under keras.utils.set_random_seed: the same shifts each epoch.
    "bug_augmentation_seeded_by_global_seed_fit.py": Bug(("augmentation-repeated",)),
    "bug_hidden_layers_without_activation_tf_function.py": Bug(("activation-missing",)),
    # BatchNormalization's default momentum over 75 updates: inference normalizes by stale stats.
    "bug_batchnorm_momentum_too_slow_for_short_fit.py": Bug(("batchnorm-statistics-stale",)),
    # Raw variables initialized to tf.zeros: the hidden units copies until rounding parts them.
    "bug_hidden_layer_initialized_to_zeros_tf_function.py": Bug(("units-identical",)),
    # A store-id column min-max scaled with the features: the Embedding truncates it to row 0.
    "bug_embedding_fed_min_max_scaled_ids_fit.py": Bug(("embedding-ids-fractional",)),
    # ScheduleFreeAdamW built by fit in a first trace: its momentum starts at 0, not the weights.
    "bug_schedule_free_optimizer_built_in_the_first_trace_fit.py": Bug(("optimizer-build-lost",)),
    # shuffle() then take/skip: a new training/validation split every epoch.
    "bug_validation_taken_after_a_reshuffling_shuffle_fit.py": Bug(("split-reshuffled",)),
    # A confusion matrix from predict on a shuffled validation set, labels from another pass.
    "bug_predict_on_a_reshuffling_dataset_then_labels_from_another_pass_fit.py": Bug(
        ("predictions-reshuffled",)
    ),
    # metrics=[keras.metrics.Accuracy()] on softmax outputs: 0 at every epoch, epoch 1 restored.
    "bug_keras_accuracy_metric_on_probabilities_fit.py": Bug(("accuracy-exact-match",)),
    # Adam(use_ema=True, ema_momentum=0.99999) over 632 updates: fit ends on the first weights.
    "bug_ema_momentum_outlasts_the_run_fit.py": Bug(("ema-weights-stale",)),
    # A DQN's soft update blends the target network with itself: it keeps its first weights.
    "bug_dqn_soft_update_blends_the_target_with_itself_tf_function.py": Bug(
        ("ema-weights-stale",), mentions=(("ema-weights-stale", "tau * online"),)
    ),
    # A stateful LSTM's chunks laid out in order, then shuffled by fit's default shuffle=True.
    "bug_stateful_lstm_rows_shuffled_by_fit.py": Bug(("stateful-shuffled",)),
    # A LossScaleOptimizer in a hand-written loop, the loss never scaled: SGD steps / 2**15.
    "bug_keras_loss_averaged_again_by_the_batch_tf_function.py": Bug(("loss-averaged-twice",)),
    "bug_loss_scaler_given_the_loss_unscaled_tf_function.py": Bug(("loss-not-scaled",)),
    # Eager, the loss a number: SGD's steps too small, the scale named (the twin scales by hand).
    "bug_loss_scaler_given_the_loss_unscaled_eager.py": Bug(
        ("update-too-small",), mentions=(("update-too-small", "loss scale (3.28e+04)"),)
    ),
    # Triplet distances summed over the batch too (no axis): the hinge of the batch's totals.
    "bug_triplet_distances_summed_over_the_batch_tf_function.py": Bug(("hinge-on-batch-total",)),
    # A segmentation map flipping the image and its mask with two random_flip calls.
    "bug_image_and_mask_flipped_by_two_draws_fit.py": Bug(("augmentation-misaligned",)),
    "bug_lr_set_by_tf_keras2_name_fit.py": Bug(("optimizer-setting-ignored",)),
    "bug_validation_split_on_data_sorted_by_target_fit.py": Bug(
        ("validation-split-ordered",), mentions=(("validation-split-ordered", "all lie above"),)
    ),
    # EarlyStopping on val_accuracy with mode="min": the worst epoch's weights restored.
    "bug_early_stopping_mode_inverted_fit.py": Bug(("monitor-mode-inverted",)),
    # Features standardized for training, the test set given to evaluate as loaded.
    "bug_test_set_not_standardized_fit.py": Bug(("heldout-scale-mismatch",)),
    # tf.reshape(x, [T, -1, F]) to step an RNN cell through time: examples scrambled.
    "bug_reshape_to_time_major_tf_function.py": Bug(
        ("reshape-transposes",), mentions=(("reshape-transposes", "perm=[1, 0, 2]"),)
    ),
    # Attention heads split by a reshape alone: each head holds a block of positions.
    "bug_attention_heads_split_by_reshape_without_transpose_fit.py": Bug(
        ("reshape-transposes",), mentions=(("reshape-transposes", "attention heads"),)
    ),
    # Images stored (N, 3, 32, 32) read by Conv2D as 3 rows, 32 columns and 32 channels.
    "bug_images_channels_first_into_default_conv2d_fit.py": Bug(
        ("channels-first-input",), mentions=(("channels-first-input", "(32, 32, 3)"),)
    ),
    # A hand-written GNN sums h[senders]'s messages by senders: every node hears only itself.
    "bug_gnn_messages_summed_at_their_senders_tf_function.py": Bug(("messages-to-sender",)),
    # PPO's "old" log-probabilities recomputed from the current actor in the tape: ratio 1.
    "bug_ppo_old_log_probs_recomputed_in_the_tape_tf_function.py": Bug(
        ("term-cancels-itself",), mentions=(("term-cancels-itself", "exp(log_p - log_p)"),)
    ),
    # repeated-columns: ordinal targets [y > k] all built with one threshold (loop index unused)
    "bug_ordinal_targets_built_with_one_threshold_tf_function.py": Bug(
        ("repeated-columns",), mentions=(("repeated-columns", "5 copies"),)
    ),
    # DANN with the domain loss subtracted, no reversal layer: the domain head learns to be wrong.
    "bug_dann_domain_loss_subtracted_without_reversal_tf_function.py": Bug(
        ("head-trained-to-lose",), mentions=(("head-trained-to-lose", "sequential_2/dense_3"),)
    ),
    # Learned uncertainty weights without their + log_var: log_var climbs, the tasks fade out.
    "bug_multitask_uncertainty_weights_without_log_var_fit.py": Bug(
        ("loss-has-no-minimum",), mentions=(("loss-has-no-minimum", "log_vars grows"),)
    ),
    # A flow's log-determinant subtracted: the loss rewards contracting the data.
    "bug_flow_log_det_sign_flipped_tf_function.py": Bug(
        ("loss-has-no-minimum",), mentions=(("loss-has-no-minimum", "log-determinant"),)
    ),
    # A Distiller differentiating self.trainable_variables: the teacher trained toward the student.
    "bug_distiller_trains_its_teacher_fit.py": Bug(
        ("teacher-trained",), mentions=(("teacher-trained", "teacher/dense"),)
    ),
    # set_floatx("float16"): weights and Adam's slots in float16, its steps jump and round away.
    "bug_model_in_float16_by_set_floatx_fit.py": Bug(("weights-half-precision",)),
    # Teacher forcing without the shift: the decoder reads each label at its own position.
    "bug_teacher_forcing_not_shifted_fit.py": Bug(("labels-in-inputs",)),
    # Each window's label is its own first value (targets=series): the model copies it.
    "bug_timeseries_targets_are_the_windows_own_values_fit.py": Bug(
        ("labels-in-inputs",), mentions=(("labels-in-inputs", "column 0"),)
    ),
    # Adam's epsilon 1 outweighs gradients near 1e-2: SGD at the learning rate.
    "bug_adam_epsilon_one_fit.py": Bug(("epsilon-dominates",)),
    # A frozen base never trained nor loaded: the head learns from fixed random features.
    "bug_frozen_base_never_pretrained_fit.py": Bug(("frozen-untrained",)),
    # Sample weights summing to 1 over the data set: SGD's steps shrink 1/N.
    "bug_sample_weights_normalized_to_sum_one_sgd_fit.py": Bug(
        ("update-too-small",), mentions=(("update-too-small", "every sample weight is"),)
    ),
    # fit's targets listed for dict outputs: Keras 3 matches them in sorted-key order.
    "bug_dict_outputs_fit_given_a_list_of_targets_fit.py": Bug(
        ("loss-misassigned",), mentions=(("loss-misassigned", "targets listed first"),)
    ),
    # loss_weights listed for dict outputs: Keras matches them in sorted-key order.
    "bug_loss_weights_listed_for_dict_outputs_fit.py": Bug(
        ("loss-misassigned",), mentions=(("loss-misassigned", "'main' gets weight 0.0"),)
    ),
    "bug_gradient_of_predictions_own_train_step_fit.py": Bug(("gradient-of-predictions",)),
    "bug_next_token_attention_without_causal_mask_fit.py": Bug(("future-tokens-visible",)),
    "bug_base_frozen_between_fits_without_compile_fit.py": Bug(("frozen-still-trained",)),
    "bug_persistent_tape_reused_for_k_updates_tf_function.py": Bug(("tape-reused-after-update",)),
    "bug_dropout_rate_is_tf1_keep_prob_fit.py": Bug(
        ("predictions-constant",), mentions=(("predictions-constant", "keep_prob"),)
    ),
    "bug_reduce_lr_on_plateau_monitors_unlogged_name_fit.py": Bug(
        ("monitor-not-logged",), mentions=(("monitor-not-logged", "monitor='val_loss'"),)
    ),
    "bug_custom_train_step_loss_tracker_never_updated_fit.py": Bug(("loss-not-logged",)),
    "bug_numpy_random_in_tf_data_map_drawn_once_fit.py": Bug(
        ("random-frozen-at-trace",), mentions=(("random-frozen-at-trace", "'augment'"),)
    ),
    # np.random in a tf.function training step: one shift, drawn as the step is traced.
    "bug_numpy_random_shift_inside_the_train_step_tf_function.py": Bug(
        ("random-frozen-at-trace",), mentions=(("random-frozen-at-trace", "'train_step'"),)
    ),
    # keras.random.randint(..., seed=int) in a layer: Keras 3 draws the same shift every batch.
    "bug_keras_random_integer_seed_in_augmentation_layer_fit.py": Bug(
        ("random-frozen-at-trace",), mentions=(("random-frozen-at-trace", "SeedGenerator"),)
    ),
    # A warm-up computed in Python and set inside the traced step: the first step's rate for ever.
    "bug_warmup_rate_set_from_a_python_global_tf_function.py": Bug(
        ("learning-rate-frozen-at-trace",),
        mentions=(("learning-rate-frozen-at-trace", "0.000312"),),
    ),
    "bug_matrix_factorization_dot_score_into_bce_on_probabilities_fit.py": Bug(
        ("from-logits-mismatch",), mentions=(("from-logits-mismatch", "dot product"),)
    ),
    # loss_weights keyed by a name no output has: Keras pairs the dicts in sorted-key order.
    "bug_loss_weights_keyed_by_a_renamed_head_fit.py": Bug(
        ("loss-misassigned",), mentions=(("loss-misassigned", "'price' gets weight 0.0"),)
    ),
    "bug_unscaled_features_sgd.py": Bug(("exploding-gradient",), also_errors=("non-finite",)),
    "bug_deep_sigmoid_stack.py": Bug(("vanishing-gradient",)),
    "bug_log_zero_cross_entropy.py": Bug(("non-finite",)),
    # ReLU maps NaN to 0 on CPU, so Keras prints a finite loss; the first kernel's gradient is
    # NaN at step 0 and the model dies silently.
    # Which turns NaN first depends on TensorFlow's CPU kernels: the gradients with oneDNN (on
    # by default on Intel CPUs), the loss without (AMD): either way the data is named.
    "bug_nan_in_input_data_fit.py": Bug(("non-finite",), mentions=(("non-finite", "inputs x"),)),
    "bug_lr_schedule_goes_negative.py": Bug(("loss-not-decreasing",), also_errors=("non-finite",)),
    # checkpoint restores in the script are validated (a layer added before resuming)
    "bug_restore_after_adding_layer.py": Bug(
        ("checkpoint-missing-variables",), also_errors=("checkpoint-shape-mismatch",), exit=1
    ),
    # restore(None): the manager's directory holds no checkpoint; the model predicts untrained.
    "bug_checkpoint_manager_pointed_at_the_wrong_directory.py": Bug(
        ("checkpoint-missing-variables",), mentions=(("checkpoint-missing-variables", "None"),)
    ),
    "bug_subclassed_model_restored_before_it_is_built.py": Bug(
        ("checkpoint-missing-variables",), mentions=(("checkpoint-missing-variables", "built"),)
    ),
    # A resume whose checkpoint holds the model and an epoch counter but not the optimizer.
    "bug_resume_checkpoint_without_the_optimizer_tf_function.py": Bug(
        ("checkpoint-missing-variables",),
        mentions=(("checkpoint-missing-variables", "holds no optimizer"),),
    ),
    # A resumed fit without initial_epoch: the epoch-indexed scheduler starts over.
    "bug_fit_resumed_without_initial_epoch.py": Bug(
        ("checkpoint-optimizer-config-changed",),
        mentions=(("checkpoint-optimizer-config-changed", "initial_epoch"),),
    ),
    # load_weights(skip_mismatch=True) into a model whose every layer changed: nothing loads.
    "bug_skip_mismatch_skips_the_whole_model_fit.py": Bug(
        ("checkpoint-shape-mismatch",),
        mentions=(("checkpoint-shape-mismatch", "loaded none"),),
    ),
    # A new stage compiled after a model-only restore gets the old run's step count.
    "bug_finetune_compiled_after_restore_starts_its_schedule_late_fit.py": Bug(
        ("checkpoint-optimizer-config-changed",),
        mentions=(("checkpoint-optimizer-config-changed", "step count"),),
    ),
    # A resume restores model and optimizer, then compiles a new optimizer of the same set-up.
    "bug_resume_compiles_a_new_optimizer_fit.py": Bug(
        ("checkpoint-optimizer-state-not-restored",),
        mentions=(("checkpoint-optimizer-state-not-restored", "made no update"),),
    ),
    # labels-uninformative: SimCLR's positives on the unmasked diagonal (labels tf.range(2N))
    "bug_simclr_positive_is_each_rows_own_similarity_fit.py": Bug(
        ("labels-uninformative",), mentions=(("labels-uninformative", "own similarity"),)
    ),
    # labels-uninformative: a custom loss linear in the error (the square forgotten)
    "bug_custom_loss_mean_error_without_square_fit.py": Bug(
        ("labels-uninformative",), mentions=(("labels-uninformative", "linear in the error"),)
    ),
    # labels-uninformative: a padding mask inverted (only the padding's labels counted)
    "bug_padding_mask_inverted_tf_function.py": Bug(
        ("labels-uninformative",),
        mentions=(("labels-uninformative", "only the examples whose label is 0"),),
    ),
    # ... given to fit as sample_weight
    "bug_padding_mask_inverted_sample_weight_fit.py": Bug(
        ("labels-uninformative",),
        mentions=(("labels-uninformative", "sample_weight is non-zero only"),),
    ),
    # loss-broadcast
    "bug_loss_broadcast_mse.py": Bug(("loss-broadcast",)),
    "bug_class_ids_against_softmax_mse_fit.py": Bug(
        ("loss-broadcast",), mentions=(("loss-broadcast", "sparse_categorical_crossentropy"),)
    ),
    "bug_loss_broadcast_eager.py": Bug(
        ("loss-broadcast",),
        wrong="cannot be seen: an eager loop leaves no graph of the loss to read (TensorFlow "
        "records eager ops only in the tape's private C++ state), and the guard sees only the "
        "finished loss value; the model's output shape is (n, 1) in healthy loops too. The "
        "tf.function version is found, and so is this one under TrainStep.",
    ),
    # dead-units, under `gradguard run --activations` (an inverted warmup kills the ReLUs)
    "bug_dead_relu_warmup_inverted_eager.py": Bug(
        ("dead-units",), mentions=(("dead-units", "dense_1"),), options=("--activations",)
    ),
    "bug_dead_relu_warmup_inverted_tf_function.py": Bug(
        ("dead-units",), mentions=(("dead-units", "dense_1"),), options=("--activations",)
    ),
    "bug_dead_relu_warmup_inverted_fit.py": Bug(
        ("dead-units",), mentions=(("dead-units", "dense_1"),), options=("--activations",)
    ),
    # --- checkpoint paths Keras 3 users take (issue #14 item 1): judged as the script's own
    # load_weights / tf.train.Checkpoint.restore call restores.
    "bug_load_weights_h5_optimizer_not_built.py": Bug(
        ("checkpoint-optimizer-state-not-restored",),
        mentions=(("checkpoint-optimizer-state-not-restored", "not been built"),),
    ),
    "bug_keras_archive_load_weights_optimizer_not_built.py": Bug(
        ("checkpoint-optimizer-state-not-restored",),
        mentions=(("checkpoint-optimizer-state-not-restored", "not been built"),),
    ),
    "bug_checkpoint_restore_overrides_finetune_lr.py": Bug(
        ("checkpoint-optimizer-config-changed",),
        mentions=(("checkpoint-optimizer-config-changed", "the 1e-05 the code asked for"),),
    ),
    # The same in a model restored before compile: TF puts the rate into compile's optimizer.
    "bug_checkpoint_restored_before_compile_keeps_pretrain_lr_fit.py": Bug(
        ("checkpoint-optimizer-config-changed",),
        mentions=(("checkpoint-optimizer-config-changed", "after compile"),),
    ),
    # SGD's slots do not fit Adam's: the rows that meet are optimizer slots of other shapes.
    "bug_optimizer_class_changed_sgd_to_adam.py": Bug(
        ("checkpoint-optimizer-config-changed",),
        also_errors=("checkpoint-shape-mismatch",),
        mentions=(("checkpoint-optimizer-config-changed", "SGD with momentum"),),
    ),
    # --- reported bugs from the second corpus (tests/scripts headers name their sources).
    # Variables that never train: hand-made tf.Variables Keras 3 does not track, a GAN's
    # discriminator frozen before compile, an encoder left out of both optimizers.
    "bug_keras3_model_tf_variable_attributes_fit.py": Bug(("variable-not-trained",)),
    "bug_layer_tf_variable_list_custom_loop.py": Bug(("variable-not-trained",)),
    "bug_lambda_layer_closes_over_variable_fit.py": Bug(("variable-not-trained",)),
    "bug_keras_gan_classic_freeze_order_keras3.py": Bug(("variable-not-trained",)),
    "bug_unfreeze_without_recompile_fit.py": Bug(
        ("variable-not-trained",), mentions=(("variable-not-trained", "model.compile()"),)
    ),
    "bug_gaugan_encoder_never_trained.py": Bug(("variable-not-trained",)),
    # Weights the forward pass never reads, or a model whose call skips layers.
    "bug_build_time_concat_weights_fit.py": Bug(
        ("none-gradient",), mentions=(("none-gradient", "never read"),)
    ),
    "bug_noisy_dense_unused_weights_tf_function.py": Bug(("none-gradient",)),
    "bug_rnn_cell_unused_weight_fit.py": Bug(("none-gradient",)),
    "bug_subclassed_call_skips_layers_eager.py": Bug(("none-gradient",)),
    "bug_reinforce_log_probs_numpy_buffer.py": Bug(("none-gradient",), exit=1),
    # set_weights inside the tape replaces the variables' values: no path to the loss.
    "bug_maml_set_weights_breaks_tape.py": Bug(("none-gradient",), exit=1),
    # Schedules whose decay_steps count epochs: the weights stop changing partway.
    "bug_cosine_decay_steps_in_epochs_fit.py": Bug(("weights-unchanged",)),
    "bug_polynomial_decay_steps_in_epochs_tf_function.py": Bug(("weights-unchanged",)),
    "bug_poly_lr_callback_past_max_epoch_fit.py": Bug(("weights-unchanged",)),
    # The accumulator is reset before apply_gradients: every applied gradient is zero.
    "bug_grad_accumulation_reset_before_apply.py": Bug(
        ("zero-gradient",), mentions=(("zero-gradient", "accumulator"),)
    ),
    # A ReLU output layer that died: every gradient stalls at zero from one step on.
    "bug_relu_output_layer_predictions_zero.py": Bug(
        ("zero-gradient",), mentions=(("zero-gradient", "since step"),)
    ),
    # Stuck at chance level, or a loss that never changes, or inputs and labels misaligned.
    "bug_adam_lr_too_high_chance_level_fit.py": Bug(
        ("loss-not-decreasing",), mentions=(("loss-not-decreasing", "chance level"),)
    ),
    "bug_categorical_ce_single_sigmoid_unit_fit.py": Bug(
        ("loss-not-decreasing",), mentions=(("loss-not-decreasing", "exactly"),)
    ),
    "bug_shuffle_then_map_zip_misaligned.py": Bug(("loss-not-decreasing",)),
    # What the inputs, the data's scale or the optimizer show, named beside the symptom.
    # Positive interactions only, into a factorization with per-id biases: every label 1.
    "bug_recommender_trained_on_positive_interactions_only_fit.py": Bug(
        ("loss-not-decreasing",), mentions=(("loss-not-decreasing", "sampled negatives"),)
    ),
    "bug_regression_targets_in_thousands_adam_fit.py": Bug(
        ("loss-not-decreasing",), mentions=(("loss-not-decreasing", "the data's scale"),)
    ),
    "bug_raw_pixels_sgd_cnn_fit.py": Bug(
        ("loss-not-decreasing",), mentions=(("loss-not-decreasing", "8-bit pixels never scaled"),)
    ),
    "bug_mixed_float16_loop_without_loss_scaling.py": Bug(
        ("zero-gradient",), mentions=(("zero-gradient", "LossScaleOptimizer"),)
    ),
    "bug_adamw_weight_decay_typo_fit.py": Bug(
        ("loss-not-decreasing",), mentions=(("loss-not-decreasing", "weight_decay=50"),)
    ),
    # 8-bit pixels divided by 255 when loaded and again before fit: inputs in [0, 1/255].
    "bug_pixels_divided_by_255_twice_fit.py": Bug(("inputs-rescaled-twice",)),
    # Reviews padded at the end, read by an LSTM without a mask: the padding is named.
    "bug_lstm_post_padding_without_mask_fit.py": Bug(
        ("loss-not-decreasing",), mentions=(("loss-not-decreasing", "without a mask"),)
    ),
    "bug_adam_lr_1e7_from_scratch_fit.py": Bug(("loss-not-decreasing",)),
    # SGD's global_clipnorm 1000x below the gradients' norm: every step scaled down to it.
    "bug_sgd_global_clipnorm_far_below_gradients_fit.py": Bug(
        ("update-too-small",), mentions=(("update-too-small", "global_clipnorm"),)
    ),
    "bug_deep_sigmoid_dnn_stuck_fit.py": Bug(("vanishing-gradient", "loss-not-decreasing")),
    # House prices in dollars under Adam: a gradient norm of 9e5 before any update, the loss
    # 4.6e10 barely moving; the data's scale, not a learning rate, is named.
    "bug_unscaled_regression_targets_fit.py": Bug(
        ("exploding-gradient",), mentions=(("exploding-gradient", "the scale of the data"),)
    ),
    # fit's held-out data: validation_split's last examples, a class the training part lacks.
    # optimizer-recreated
    "bug_optimizer_created_inside_the_loop_eager.py": Bug(("optimizer-recreated",)),
    # training-flag-missing: model(x) in a custom loop, BatchNormalization in inference mode.
    "bug_model_called_without_training_true_batchnorm_tf_function.py": Bug(
        ("training-flag-missing",)
    ),
    # normalization-not-adapted: TensorFlow's regression tutorial without normalizer.adapt().
    "bug_normalization_layer_not_adapted_fit.py": Bug(("normalization-not-adapted",)),
    # class-weights-inverted: fit's class_weight as count / total on 9:1 data.
    "bug_class_weight_proportional_to_frequency_fit.py": Bug(("class-weights-inverted",)),
    # class-weights-misnumbered: "balanced" weights counted on labels numbered from 1.
    "bug_class_weight_counted_on_labels_numbered_from_one_fit.py": Bug(
        ("class-weights-misnumbered",)
    ),
    # sample-weights-misaligned: balanced weights left behind when x and y were permuted.
    "bug_sample_weight_not_permuted_with_the_data_fit.py": Bug(("sample-weights-misaligned",)),
    # vocabulary-misses-data: a StringLookup adapted on a sample of its column.
    "bug_string_lookup_adapted_on_a_sample_fit.py": Bug(("vocabulary-misses-data",)),
    # normalization-features-pooled: Normalization(axis=None) on a price beside ratios.
    "bug_normalization_axis_none_on_mixed_scales_fit.py": Bug(("normalization-features-pooled",)),
    # weights-copied-as-constant: a tied decoder's transposed kernel taken in build().
    "bug_tied_decoder_kernel_transposed_in_build_fit.py": Bug(("weights-copied-as-constant",)),
    # A learning rate brought down 1000x and more during training, the weights all but still.
    "bug_lr_scheduler_compounds_every_epoch_fit.py": Bug(
        ("update-too-small",), mentions=(("update-too-small", "brought down from 0.001"),)
    ),
    # batches-one-class
    "bug_dataset_sorted_by_class_not_shuffled_fit.py": Bug(("batches-one-class",)),
    # ... or through shuffle(64): batches mostly of one class (tensorflow#36626).
    "bug_sorted_classes_through_a_small_shuffle_buffer_fit.py": Bug(("batches-one-class",)),
    "bug_validation_split_on_data_sorted_by_class_fit.py": Bug(
        ("loss-not-decreasing",), mentions=(("loss-not-decreasing", "validation_split=0.25"),)
    ),
    # A loss that is always 0, after a teacher trained by another optimizer before it.
    "bug_distillation_student_against_itself_fit.py": Bug(
        ("loss-not-decreasing",), mentions=(("loss-not-decreasing", "exactly 0"),)
    ),
    # Softmax applied twice, seen in the traced loss.
    "bug_softmax_twice_logits_loss.py": Bug(("from-logits-mismatch",)),
    "bug_custom_loop_cross_entropy_without_from_logits_tf_function.py": Bug(
        ("from-logits-mismatch",), mentions=(("from-logits-mismatch", "from_logits=True"),)
    ),
    # A focal loss written by hand, clipping a linear output: read as probabilities.
    "bug_focal_loss_by_hand_on_a_linear_output_tf_function.py": Bug(
        ("from-logits-mismatch",), mentions=(("from-logits-mismatch", "written by hand"),)
    ),
    # NaN: in the data (inputs, labels, an empty batch), a masked mean over no positives,
    # float16 overflow on every step, an IRNN diverging.
    "bug_nan_in_labels_fit.py": Bug(("non-finite",), mentions=(("non-finite", "labels"),)),
    "bug_log_of_zero_feature_inf_input_eager.py": Bug(
        ("non-finite",), mentions=(("non-finite", "inputs"),)
    ),
    "bug_empty_batch_batchnorm_nan_eager.py": Bug(
        ("non-finite",), mentions=(("non-finite", "empty"),)
    ),
    "bug_masked_loss_batch_without_positives.py": Bug(("non-finite",)),
    "bug_mixed_precision_fp16_overflow_every_step_skipped.py": Bug(
        ("non-finite",), mentions=(("non-finite", "loss scaler skipped every"),)
    ),
    "bug_irnn_relu_long_sequences_exploding.py": Bug(("non-finite",)),
    # Labels (n,) against predictions (n, 1) in a traced custom loss.
    "bug_custom_train_step_loss_broadcast.py": Bug(("loss-broadcast",)),
    "bug_pinn_initial_condition_broadcast_tf_function.py": Bug(("loss-broadcast",)),
}

# The healthy scripts `test_healthy_script_is_silent_with_activations` reads the logs of (see
# WATCHED_HEALTHY) run once, with their logs written: the same run serves every test of them.
WATCHED_OPTIONS = ("--activations", "--log-dir", "tb")
HEALTHY: dict[str, Healthy] = {
    "ok_custom_loop_eager.py": Healthy(options=WATCHED_OPTIONS),
    "ok_custom_loop_tf_function.py": Healthy(),
    "ok_model_fit.py": Healthy(options=WATCHED_OPTIONS),
    "ok_fit_custom_train_step.py": Healthy(),
    "ok_gan_two_optimizers.py": Healthy(options=WATCHED_OPTIONS),
    "ok_gradient_accumulation.py": Healthy(),
    "ok_frozen_layer.py": Healthy(options=WATCHED_OPTIONS),
    "ok_unused_output_head.py": Healthy(),
    "ok_a3c_local_gradients_to_global.py": Healthy(),
    "ok_unused_output_head_eager.py": Healthy(),
    "ok_mixed_precision_loss_scale.py": Healthy(),
    "ok_mixed_precision_fit.py": Healthy(options=WATCHED_OPTIONS),
    "ok_sparse_embedding.py": Healthy(),
    "ok_manual_gradient_descent.py": Healthy(),
    "ok_finetune_adam_1e5.py": Healthy(),
    "ok_gradient_accumulation_cond.py": Healthy(),
    "ok_keras_gradient_accumulation_fit.py": Healthy(),
    "ok_distillation_fit.py": Healthy(options=WATCHED_OPTIONS),
    "ok_lstm_fit.py": Healthy(),
    "ok_linear_regression_adam_lr01.py": Healthy(),
    # loss_weights 0 switches the aux output off: its head's zero gradient is the user's choice.
    "ok_fit_aux_head_loss_weight_zero.py": Healthy(),
    # --- the healthy twins of the second corpus: each bug's script done right.
    "ok_keras3_model_add_weight_fit.py": Healthy(),
    "ok_layer_add_weight_custom_loop.py": Healthy(),
    "ok_keras_gan_trainable_toggled_train_on_batch.py": Healthy(),
    "ok_gaugan_encoder_trained.py": Healthy(),
    "ok_dcgan_override_train_step.py": Healthy(),
    "ok_wgan_gp_critic_steps.py": Healthy(),
    "ok_build_weights_combined_in_call_fit.py": Healthy(),
    "ok_rnn_cell_all_weights_used_fit.py": Healthy(),
    "ok_subclassed_call_chained_eager.py": Healthy(),
    "ok_reinforce_log_probs_stacked.py": Healthy(),
    "ok_dqn_target_network_tf_function.py": Healthy(),
    "ok_loss_scaler_loss_scaled_by_hand_eager.py": Healthy(),
    "ok_keras_loss_per_example_summed_by_the_batch_tf_function.py": Healthy(),
    "ok_checkpoint_manager_first_run_starts_from_scratch.py": Healthy(),
    "ok_subclassed_model_built_before_it_is_restored.py": Healthy(),
    "ok_resume_compiles_the_restored_optimizer_fit.py": Healthy(),
    "ok_resume_checkpoint_with_the_optimizer_tf_function.py": Healthy(),
    "ok_finetune_compiled_after_restore_counts_from_zero_fit.py": Healthy(),
    "ok_skip_mismatch_skips_only_the_new_head_fit.py": Healthy(),
    "ok_fit_resumed_with_initial_epoch.py": Healthy(),
    # A second fit on other data (a curriculum's hard examples): its loss is a new trend.
    "ok_curriculum_easy_examples_first_fit.py": Healthy(),
    # Trained until its Q-values are exact: the output bias stops moving because it converged.
    "ok_dqn_polyak_target_converges_tf_function.py": Healthy(),
    "ok_transfer_learning_freeze_then_finetune_fit.py": Healthy(),
    "ok_multi_output_one_head_without_loss_fit.py": Healthy(),
    "ok_warmup_cosine_decay_fit.py": Healthy(),
    "ok_polynomial_decay_total_steps_tf_function.py": Healthy(),
    "ok_grad_accumulation_reset_after_apply.py": Healthy(),
    "ok_adam_default_lr_classifier_fit.py": Healthy(),
    "ok_sgd_global_clipnorm_clips_spikes_fit.py": Healthy(),
    "ok_validation_split_after_shuffle_fit.py": Healthy(),
    "ok_dataset_sorted_by_class_shuffled_fit.py": Healthy(),
    "ok_stateless_sgd_created_inside_the_loop_eager.py": Healthy(),
    "ok_lr_scheduler_decays_from_the_initial_rate_fit.py": Healthy(),
    "ok_class_weight_balanced_fit.py": Healthy(),
    "ok_class_weight_counted_on_the_labels_fit_is_given_fit.py": Healthy(),
    "ok_sample_weight_permuted_with_the_data_fit.py": Healthy(),
    "ok_string_lookup_adapted_on_the_training_column_fit.py": Healthy(),
    "ok_normalization_per_feature_on_mixed_scales_fit.py": Healthy(),
    "ok_tied_decoder_kernel_transposed_in_call_fit.py": Healthy(),
    "ok_model_called_with_training_true_batchnorm_tf_function.py": Healthy(),
    "ok_normalization_layer_adapted_fit.py": Healthy(),
    # Optimizers one after another: a stage on trained weights, a second model on a shared layer.
    "ok_new_optimizer_on_a_noisy_plateau_fit.py": Healthy(),
    "ok_second_task_on_a_shared_layer_fit.py": Healthy(),
    # Units compared on rows a sparse input never reached (all still 0): no evidence.
    "ok_zero_initialized_wide_linear_fit.py": Healthy(),
    "ok_single_unit_sigmoid_binary_fit.py": Healthy(),
    "ok_softmax_sparse_ce_digit_labels_fit.py": Healthy(),
    "ok_logits_with_from_logits_loss.py": Healthy(),
    "ok_focal_loss_by_hand_on_a_sigmoid_output_tf_function.py": Healthy(),
    "ok_zip_then_shuffle_aligned.py": Healthy(),
    "ok_deep_relu_he_init_fit.py": Healthy(),
    "ok_linear_output_regression_lstm.py": Healthy(),
    "ok_lstm_tanh_clipnorm.py": Healthy(),
    "ok_log1p_features_eager.py": Healthy(),
    "ok_batchnorm_full_batches_eager.py": Healthy(),
    "ok_masked_loss_divide_no_nan.py": Healthy(),
    "ok_mixed_precision_initial_scale_skips_fit.py": Healthy(),
    "ok_custom_train_step_shapes_match.py": Healthy(),
    "ok_custom_loss_mean_absolute_error_fit.py": Healthy(),
    "ok_custom_loop_cross_entropy_from_logits_tf_function.py": Healthy(),
    "ok_padding_mask_drops_padding_tf_function.py": Healthy(),
    "ok_padding_mask_sample_weight_fit.py": Healthy(),
    "ok_multilabel_sigmoid_output_fit.py": Healthy(),
    "ok_class_ids_sparse_ce_softmax_fit.py": Healthy(),
    "ok_unscaled_regression_targets_fit.py": Healthy(),
    "ok_lstm_post_padding_without_mask_fit.py": Healthy(),
    "ok_pixels_divided_by_255_twice_fit.py": Healthy(),
    "ok_regression_targets_in_thousands_adam_fit.py": Healthy(),
    "ok_raw_pixels_sgd_cnn_fit.py": Healthy(),
    "ok_mixed_float16_loop_without_loss_scaling.py": Healthy(),
    "ok_adamw_weight_decay_typo_fit.py": Healthy(),
    "ok_one_plus_keras_cosine_similarity_fit.py": Healthy(),
    "ok_one_minus_dice_coefficient_as_the_loss_fit.py": Healthy(),
    "ok_masks_kept_0_and_1_images_divided_by_255_fit.py": Healthy(),
    "ok_simclr_positive_is_the_other_view_fit.py": Healthy(),
    "ok_pinn_initial_condition_shapes_match.py": Healthy(),
    "ok_mirrored_strategy_loop.py": Healthy(),
    "ok_warmup_from_zero.py": Healthy(),
    # The same networks as the dead-ReLU bugs, warmup the right way round.
    "ok_relu_warmup_tf_function.py": Healthy(options=("--activations",)),
    "ok_relu_warmup_fit.py": Healthy(options=("--activations",)),
    # --- the healthy twins of the checkpoint paths above (issue #14 item 1).
    "ok_load_weights_h5_optimizer_built.py": Healthy(),
    "ok_keras_archive_load_model_resume.py": Healthy(),
    # A checkpoint, a SavedModel and an archive written under run hold none of its state.
    "ok_export_after_custom_loop_and_fit.py": Healthy(),
    "ok_checkpoint_restore_then_set_finetune_lr.py": Healthy(),
    "ok_checkpoint_restored_before_compile_resumes_fit.py": Healthy(),
    "ok_optimizer_same_class_resume.py": Healthy(),
    # The twin of bug_adam_learning_rate_one: large first steps, then a loss far below chance.
    "ok_sgd_momentum_rewrites_fresh_head_then_converges_fit.py": Healthy(),
    "ok_loss_weights_listed_for_dict_outputs_fit.py": Healthy(),
    "ok_dict_outputs_fit_given_a_dict_of_targets_fit.py": Healthy(),
    "ok_loss_weights_keyed_by_a_renamed_head_fit.py": Healthy(),
    "ok_gradient_of_predictions_own_train_step_fit.py": Healthy(),
    "ok_next_token_attention_without_causal_mask_fit.py": Healthy(),
    "ok_base_frozen_between_fits_without_compile_fit.py": Healthy(),
    "ok_persistent_tape_reused_for_k_updates_tf_function.py": Healthy(),
    "ok_dropout_rate_is_one_minus_keep_prob_fit.py": Healthy(),
    "ok_reduce_lr_on_plateau_monitors_val_loss_fit.py": Healthy(),
    "ok_custom_train_step_loss_tracker_updated_fit.py": Healthy(),
    "ok_tf_random_in_tf_data_map_fit.py": Healthy(),
    "ok_matrix_factorization_dot_score_from_logits_fit.py": Healthy(),
    "ok_vae_kl_without_minus_tf_function.py": Healthy(),
    "ok_sample_weights_normalized_to_sum_one_sgd_fit.py": Healthy(),
    "ok_frozen_base_never_pretrained_fit.py": Healthy(),
    "ok_adam_epsilon_one_large_gradients_fit.py": Healthy(),
    "ok_augmentation_flip_changes_label_fit.py": Healthy(),
    "ok_rows_normalized_instead_of_features_fit.py": Healthy(),
    "ok_teacher_forcing_not_shifted_fit.py": Healthy(),
    "ok_timeseries_targets_follow_the_windows_fit.py": Healthy(),
    "ok_keras_random_seed_generator_in_augmentation_layer_fit.py": Healthy(),
    "ok_warmup_rate_passed_as_a_tensor_tf_function.py": Healthy(),
    "ok_dataset_not_repeated_steps_per_epoch_fit.py": Healthy(),
    "ok_tags_padded_after_tokens_padded_before_fit.py": Healthy(),
    "ok_one_hot_labels_numbered_from_one_train_step.py": Healthy(),
    "ok_hinge_loss_labels_zero_one_tf_function.py": Healthy(),
    "ok_giou_loss_given_center_size_boxes_fit.py": Healthy(),
    "ok_quantile_losses_made_in_a_loop_fit.py": Healthy(),
    "ok_actor_critic_advantage_not_stopped_tf_function.py": Healthy(),
    "ok_vae_reconstruction_averaged_posterior_collapse_fit.py": Healthy(),
    "ok_contrastive_loss_labels_inverted_fit.py": Healthy(),
    "ok_reshape_to_time_major_tf_function.py": Healthy(),
    "ok_attention_heads_split_by_reshape_and_transpose_fit.py": Healthy(),
    "ok_images_transposed_to_channels_last_conv2d_fit.py": Healthy(),
    "ok_gnn_messages_summed_at_their_receivers_tf_function.py": Healthy(),
    "ok_ppo_old_log_probs_stored_with_the_rollout_tf_function.py": Healthy(),
    "ok_dqn_soft_update_blends_in_the_online_weights_tf_function.py": Healthy(),
    "ok_dann_domain_loss_behind_a_gradient_reversal_layer_tf_function.py": Healthy(),
    "ok_ordinal_targets_one_threshold_each_tf_function.py": Healthy(),
    "ok_multitask_uncertainty_weights_with_log_var_fit.py": Healthy(),
    "ok_flow_log_det_added_tf_function.py": Healthy(),
    "ok_distiller_trains_only_its_student_fit.py": Healthy(),
    "ok_model_in_mixed_float16_fit.py": Healthy(),
    # A TD loss against a synced target network rises as the values grow: not judged.
    "ok_td_values_with_a_synced_target_network_loss_rises_tf_function.py": Healthy(),
    "ok_regression_relu_output_standardized_targets_fit.py": Healthy(),
    "ok_mask_zero_on_a_real_token_fit.py": Healthy(),
    "ok_gradient_accumulators_never_reset_tf_function.py": Healthy(),
    "ok_features_labels_shuffled_apart_zipped_fit.py": Healthy(),
    "ok_attention_mask_keeps_padding_fit.py": Healthy(),
    "ok_test_set_not_standardized_fit.py": Healthy(),
    "ok_numpy_batch_drawn_in_tf_function.py": Healthy(),
    "ok_softmax_over_size_one_axis_fit.py": Healthy(),
    "ok_early_stopping_mode_inverted_fit.py": Healthy(),
    "ok_regularizer_not_added_in_loop.py": Healthy(),
    "ok_class_weight_passed_by_train_step_override_fit.py": Healthy(),
    "ok_label_smoothing_loss_with_arguments_in_order_fit.py": Healthy(),
    "ok_sorted_classes_through_a_full_shuffle_buffer_fit.py": Healthy(),
    "ok_lstm_gradient_spike_while_it_starts_to_learn_fit.py": Healthy(),
    "ok_augmentation_seeded_dataset_repeated_for_ever_fit.py": Healthy(),
    "ok_recommender_trained_with_sampled_negatives_fit.py": Healthy(),
    "ok_random_shift_drawn_in_the_graph_inside_the_train_step_tf_function.py": Healthy(),
    "ok_augmentation_cached_then_replayed_fit.py": Healthy(),
    "ok_validation_split_on_data_sorted_by_target_fit.py": Healthy(),
    "ok_hidden_layers_without_activation_tf_function.py": Healthy(),
    "ok_batchnorm_momentum_too_slow_for_short_fit.py": Healthy(),
    "ok_ema_momentum_averages_within_the_run_fit.py": Healthy(),
    "ok_stateful_lstm_rows_in_order_fit.py": Healthy(),
    "ok_loss_scaler_given_the_scaled_loss_tf_function.py": Healthy(),
    "ok_triplet_distances_per_triplet_tf_function.py": Healthy(),
    "ok_image_and_mask_flipped_by_one_draw_fit.py": Healthy(),
    "ok_embedding_fed_raw_ids_as_floats_fit.py": Healthy(),
    "ok_accuracy_metric_string_fit.py": Healthy(),
    "ok_validation_taken_after_a_shuffle_done_once_fit.py": Healthy(),
    "ok_predict_on_an_unshuffled_dataset_with_labels_from_another_pass_fit.py": Healthy(),
    "ok_schedule_free_optimizer_built_before_fit.py": Healthy(),
    "ok_hidden_layer_initialized_randomly_tf_function.py": Healthy(),
    "ok_lr_set_by_tf_keras2_name_fit.py": Healthy(),
}

# Healthy scripts of other shapes whose logs (`--log-dir`, `WATCHED_OPTIONS`) show that
# watching the activations does not make them noisy. Each with the layer outputs its
# optimizers watch, as logged: a CNN; a GAN (its discriminator has only LeakyReLUs); a base
# trained, then frozen (the second optimizer watches nothing); a teacher, then a student;
# mixed precision; eager.
WATCHED_HEALTHY: dict[str, set[str]] = {
    "ok_model_fit.py": {"dead_units/conv2d", "dead_units/dense", "saturation/dense_1"},
    "ok_gan_two_optimizers.py": {"dead_units/sequential/dense", "dead_units/sequential/dense_1"},
    "ok_frozen_layer.py": {
        "dead_units/base/dense",
        "dead_units/base/dense_1",
        "saturation/sequential/dense_2",
    },
    "ok_distillation_fit.py": {"dead_units/dense", "dead_units/student/dense_2"},
    "ok_mixed_precision_fit.py": {"dead_units/dense", "dead_units/dense_1"},
    "ok_custom_loop_eager.py": {"dead_units/dense"},
}


# -- running scripts ---------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """One finished `gradguard run`."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    json_path: Path

    @property
    def report(self) -> dict[str, Any]:
        assert self.json_path.exists(), f"no JSON report written\n{self.describe()}"
        return json.loads(self.json_path.read_text())

    @property
    def findings(self) -> list[dict[str, Any]]:
        return self.report["findings"]

    def codes(self, severity: str | None = None) -> set[str]:
        return {f["code"] for f in self.findings if severity in (None, f["severity"])}

    def describe(self) -> str:
        lines = [f"$ {' '.join(self.command)}", f"exit status {self.returncode}"]
        if self.json_path.exists():
            for f in json.loads(self.json_path.read_text())["findings"]:
                lines.append(f"  {f['severity']} {f['code']}: {f['message']}")
        else:
            lines.append("  (no JSON report)")
        lines.append("stderr (tail):")
        lines.extend("  " + line for line in self.stderr.splitlines()[-25:])
        return "\n".join(lines)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["CUDA_VISIBLE_DEVICES"] = ""
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_key(script: str, options: Sequence[str] = ()) -> str:
    """The key of one run: the script and its `gradguard run` options."""
    return " ".join([script, *options])


def table_key(script: str) -> str:
    """The run of a corpus script, with the options its table entry asks for."""
    entry = BUGS.get(script) or HEALTHY.get(script)
    return run_key(script, entry.options if entry else ())


def gradguard_run(
    workdir: Path, script: str | Path, *args: str, options: Sequence[str] = ()
) -> Run:
    """`python -m gradguard run --json PATH [options] SCRIPT [args]` in `workdir`."""
    workdir.mkdir(parents=True, exist_ok=True)
    json_path = workdir / "report.json"
    command = [
        sys.executable,
        "-m",
        "gradguard",
        "run",
        "--json",
        str(json_path),
        *options,
        str(script),
        *args,
    ]
    proc = subprocess.run(
        command,
        cwd=workdir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return Run(command, proc.returncode, proc.stdout, proc.stderr, json_path)


# A Jupyter notebook: JSON, which happens to compile as Python (`null` is only a NameError).
NOTEBOOK = {
    "cells": [
        {
            "cell_type": "code",
            "execution_count": None,
            "metadata": {},
            "outputs": [],
            "source": ["import tensorflow as tf\n", "print(tf.__version__)"],
        }
    ],
    "metadata": {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
    },
    "nbformat": 4,
    "nbformat_minor": 5,
}


def _contract_runs(root: Path) -> dict[str, Any]:
    """The command-line contract's runs: key -> a function making the Run."""
    not_python = root / "data" / "train.sh"
    not_python.parent.mkdir(parents=True, exist_ok=True)
    not_python.write_text("#!/bin/bash\nset -e\npython train.py --epochs 3\n")
    notebook = root / "data" / "train.ipynb"
    notebook.write_text(json.dumps(NOTEBOOK, indent=1))
    argv_file = root / "argv" / "argv.json"
    argv_file.parent.mkdir(parents=True, exist_ok=True)
    return {
        "cli_exit_status": lambda: gradguard_run(
            root / "exit_status",
            SCRIPTS / "cli_exit_status.py",
            str(argv_file),
            "3",
            "--epochs",
            "7",
            options=["--every", "2"],
        ),
        "cli_uncaught_exception": lambda: gradguard_run(
            root / "uncaught", SCRIPTS / "cli_uncaught_exception.py"
        ),
        "cli_never_trains": lambda: gradguard_run(root / "never", SCRIPTS / "cli_never_trains.py"),
        "cli_missing_script": lambda: gradguard_run(root / "missing", root / "no_such_train.py"),
        "cli_not_python": lambda: gradguard_run(root / "not_python", not_python),
        "cli_notebook": lambda: gradguard_run(root / "notebook", notebook),
        "cli_every_zero": lambda: gradguard_run(
            root / "every_zero", SCRIPTS / "cli_never_trains.py", options=["--every", "0"]
        ),
        "cli_dead_relu_without_activations": lambda: gradguard_run(
            root / "dead_without_activations", SCRIPTS / DEAD_RELU, options=["--no-activations"]
        ),
    }


CLI_SCRIPTS = {"cli_exit_status.py", "cli_uncaught_exception.py", "cli_never_trains.py"}
# Contract tests and the runs they read.
CONTRACT_NEEDS = {
    "test_cli_passes_argv_and_returns_exit_status": "cli_exit_status",
    "test_cli_uncaught_exception_exits_1_with_findings": "cli_uncaught_exception",
    "test_cli_script_that_never_trains": "cli_never_trains",
    "test_cli_missing_script": "cli_missing_script",
    "test_cli_not_a_python_script": "cli_not_python",
    "test_cli_notebook_is_not_a_python_script": "cli_notebook",
    "test_cli_every_zero_is_a_usage_error": "cli_every_zero",
    "test_cli_activations_are_off_with_no_activations": "cli_dead_relu_without_activations",
}
DEAD_RELU = "bug_dead_relu_warmup_inverted_tf_function.py"
DEAD_RELU_TESTS = {
    "test_cli_dead_units_in_the_json_report",
    "test_cli_activations_are_off_with_no_activations",
}


class _Worker:
    """A `corpus_worker.py` process running its share of the corpus, one script at a time."""

    def __init__(self, jobs: list[dict[str, Any]], root: Path, index: int):
        jobs_file = root / f"worker{index}.json"
        jobs_file.write_text(json.dumps(jobs))
        self.done_files = [Path(job["done"]) for job in jobs]
        self.log = root / f"worker{index}.log"
        self.started = time.time()
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(WORKER), str(jobs_file)],
                cwd=root,
                env=_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _last_progress(self) -> float:
        """When the worker last finished a job (or started)."""
        finished = [f.stat().st_mtime for f in self.done_files if f.exists()]
        return max([self.started, *finished])

    def wait(self, done: Path) -> dict[str, Any]:
        """The finished job's outcome; fails if the worker dies or hangs before it."""
        while not done.exists():
            if self.process.poll() is not None and not done.exists():
                tail = self.log.read_text(errors="replace")[-3000:]
                raise AssertionError(f"corpus worker exited {self.process.returncode}:\n{tail}")
            if time.time() - self._last_progress() > TIMEOUT:
                self.process.kill()
                raise AssertionError(f"a corpus script ran for over {TIMEOUT} s before {done}")
            time.sleep(0.2)
        return json.loads(done.read_text())


class Runs:
    """Runs scripts in the background; results by key.

    Corpus runs go to `MAX_PARALLEL` workers, planned all at once (`plan`); the contract's runs
    are real command-line processes, one at a time beside them.
    """

    def __init__(self, root: Path):
        self.root = root
        self.pool = concurrent.futures.ThreadPoolExecutor(1)
        self.futures: dict[str, concurrent.futures.Future[Run]] = {}
        self.contract = _contract_runs(root / "cli")
        self.jobs: dict[str, tuple[dict[str, Any], _Worker]] = {}
        self.workers: list[_Worker] = []

    def plan(self, keys: Sequence[str]) -> None:
        """Starts the runs of `keys`: contract runs one by one, corpus runs in workers."""
        corpus = []
        for key in dict.fromkeys(keys):
            if key in self.contract:
                if key not in self.futures:
                    self.futures[key] = self.pool.submit(self.contract[key])
            elif key not in self.jobs:
                corpus.append(key)
        for share in (corpus[i::MAX_PARALLEL] for i in range(MAX_PARALLEL)):
            if not share:
                continue
            jobs = [self._job(key) for key in share]
            worker = _Worker(jobs, self.root, len(self.workers))
            self.workers.append(worker)
            for key, job in zip(share, jobs):
                self.jobs[key] = (job, worker)

    def _job(self, key: str) -> dict[str, Any]:
        script, *options = key.split(" ")
        workdir = self.root / key.replace(".py", "").replace(" --", "-").replace(" ", "-")
        workdir.mkdir(parents=True, exist_ok=True)
        return {
            "script": str(SCRIPTS / script),
            "options": options,
            "workdir": str(workdir),
            "json": str(workdir / "report.json"),
            "done": str(workdir / "done.json"),
        }

    def get(self, key: str) -> Run:
        if key not in self.futures and key not in self.jobs:
            self.plan([key])
        if key in self.futures:
            return self.futures[key].result()
        job, worker = self.jobs[key]
        done = worker.wait(Path(job["done"]))
        command = ["gradguard", "run", "--json", job["json"], *job["options"], job["script"]]
        return Run(command, done["returncode"], done["stdout"], done["stderr"], Path(job["json"]))

    def close(self) -> None:
        for worker in self.workers:
            if worker.process.poll() is None:
                worker.process.kill()
        self.pool.shutdown(wait=False, cancel_futures=True)


@pytest.fixture(scope="session")
def runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """Starts every run the selected tests of this module need, in test order."""
    the_runs = Runs(tmp_path_factory.mktemp("gradguard_run"))
    keys = []
    for item in request.session.items:
        if getattr(item, "module", None) is not sys.modules[__name__]:
            continue
        params = getattr(getattr(item, "callspec", None), "params", {})
        keys.append(CONTRACT_NEEDS.get(getattr(item, "originalname", "")))
        if "script" in params:
            keys.append(table_key(params["script"]))
        if "watched" in params:
            keys.append(run_key(params["watched"], WATCHED_OPTIONS))
        if getattr(item, "originalname", "") in DEAD_RELU_TESTS:
            keys.append(table_key(DEAD_RELU))
    the_runs.plan([key for key in keys if key])
    yield the_runs
    the_runs.close()


def _params(table: dict[str, Any], reason_of: Any) -> list[Any]:
    params = []
    for script, expected in table.items():
        reason = reason_of(expected)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        params.append(pytest.param(script, id=script.removesuffix(".py"), marks=marks))
    return params


# -- the corpus --------------------------------------------------------------------------------


def test_corpus_is_complete() -> None:
    """Every script is in a table, every table entry exists, and each says what it is."""
    on_disk = {p.name for p in SCRIPTS.glob("*.py")}
    corpus = {n for n in on_disk if n.startswith(("bug_", "ok_"))}
    assert corpus == set(BUGS) | set(HEALTHY)
    assert {n for n in on_disk if n.startswith("cli_")} == CLI_SCRIPTS
    assert len(BUGS) + len(HEALTHY) >= 20
    for name in on_disk:
        text = (SCRIPTS / name).read_text()
        assert text.startswith('"""'), f"{name} must open with a docstring saying what it is"
        assert "gradguard" not in text, f"{name} must not know about gradguard"


def test_every_runtime_code_has_a_buggy_script() -> None:
    """The codes `gradguard run` can emit, each proven by at least one buggy script."""
    runtime_codes = {
        "missing-apply",
        "variable-not-trained",
        "none-gradient",
        "zero-gradient",
        "weights-unchanged",
        "update-too-small",
        "update-too-large",
        "exploding-gradient",
        "vanishing-gradient",
        "non-finite",
        "loss-not-decreasing",
        "loss-broadcast",
        "dead-units",
        "gradient-misassigned",
        "labels-out-of-range",
        "inputs-rescaled-twice",
        "frozen-untrained",
        "epsilon-dominates",
        "labels-in-inputs",
        "data-exhausted",
        "padding-misaligned",
        "reshape-transposes",
        "channels-first-input",
        "messages-to-sender",
        "term-cancels-itself",
        "repeated-columns",
        "head-trained-to-lose",
        "loss-has-no-minimum",
        "teacher-trained",
        "weights-half-precision",
        "zero-token-masked",
        "accumulators-not-reset",
        "attention-mask-inverted",
        "heldout-scale-mismatch",
        "batch-frozen-at-trace",
        "softmax-over-one",
        "monitor-mode-inverted",
        "regularization-ignored",
        "sample-weights-ignored",
        "validation-split-ordered",
        "activation-missing",
        "optimizer-setting-ignored",
        "augmentation-repeated",
        "batchnorm-statistics-stale",
        "class-weights-misnumbered",
        "sample-weights-misaligned",
        "vocabulary-misses-data",
        "normalization-features-pooled",
        "weights-copied-as-constant",
        "ema-weights-stale",
        "embedding-ids-fractional",
        "accuracy-exact-match",
        "split-reshuffled",
        "predictions-reshuffled",
        "optimizer-build-lost",
        "stateful-shuffled",
        "loss-not-scaled",
        "hinge-on-batch-total",
        "augmentation-misaligned",
        "gradient-of-predictions",
        "future-tokens-visible",
        "frozen-still-trained",
        "tape-reused-after-update",
        "predictions-constant",
        "monitor-not-logged",
        "loss-not-logged",
        "random-frozen-at-trace",
        "learning-rate-frozen-at-trace",
        "loop-variable-late-bound",
        "advantage-not-stopped",
        "posterior-collapsed",
        "contrastive-labels-inverted",
        "loss-misassigned",
    }
    covered = {code for bug in BUGS.values() for code in bug.codes}
    assert runtime_codes <= covered


@pytest.mark.parametrize("script", _params(BUGS, lambda bug: bug.wrong))
def test_buggy_script_is_diagnosed(runs: Runs, script: str) -> None:
    bug = BUGS[script]
    run = runs.get(table_key(script))
    context = run.describe()
    assert run.returncode == bug.exit, context
    found = run.codes()
    missing = set(bug.codes) - found
    assert not missing, f"expected {sorted(missing)}\n{context}"
    wrong_errors = run.codes("error") - set(bug.codes) - set(bug.also_errors)
    assert not wrong_errors, f"unexpected error findings {sorted(wrong_errors)}\n{context}"
    for code, phrase in bug.mentions:
        messages = " ".join(f["message"] for f in run.findings if f["code"] == code)
        assert phrase in messages, f"{code} should name {phrase!r}\n{context}"


@pytest.mark.parametrize("script", _params(HEALTHY, lambda ok: ok.false_error))
def test_healthy_script_has_no_error(runs: Runs, script: str) -> None:
    run = runs.get(table_key(script))
    context = run.describe()
    assert run.returncode == 0, context
    assert run.report["steps_observed"] > 0, context
    errors = run.codes("error")
    assert not errors, f"false alarm {sorted(errors)} on a healthy script\n{context}"


@pytest.mark.parametrize("script", _params(HEALTHY, lambda ok: ok.false_error or ok.false_warning))
def test_healthy_script_is_silent(runs: Runs, script: str) -> None:
    run = runs.get(table_key(script))
    context = run.describe()
    assert run.returncode == 0, context
    assert not run.findings, f"healthy script got findings\n{context}"


@pytest.mark.parametrize("watched", sorted(WATCHED_HEALTHY))
def test_healthy_script_is_silent_with_activations(runs: Runs, watched: str) -> None:
    from gradguard import inspect as events

    assert not HEALTHY[watched].false_error and not HEALTHY[watched].false_warning
    run = runs.get(run_key(watched, WATCHED_OPTIONS))
    context = run.describe()
    assert run.returncode == 0, context
    assert run.report["steps_observed"] > 0, context
    assert not run.findings, f"healthy script got findings under --activations\n{context}"
    # Silent because the activations were seen healthy, not because none were watched.
    tags = {
        tag.removeprefix("gradguard_")
        for logged in events.load_runs(str(run.json_path.parent / "tb"))
        for tag in logged.scalars
        if tag.startswith(("gradguard_dead_units/", "gradguard_saturation/"))
    }
    assert tags == WATCHED_HEALTHY[watched], context


# -- the command-line contract -----------------------------------------------------------------


def test_cli_passes_argv_and_returns_exit_status(runs: Runs) -> None:
    run = runs.get("cli_exit_status")
    context = run.describe()
    assert run.returncode == 3, context
    script = str(SCRIPTS / "cli_exit_status.py")
    argv_file = run.command[run.command.index(script) + 1]
    recorded = json.loads(Path(argv_file).read_text())
    assert recorded["name"] == "__main__", context
    assert recorded["argv"] == [script, argv_file, "3", "--epochs", "7"], context
    # The runtime as the script configured it: gradguard had not started it before the script.
    assert (recorded["inter_op_threads"], recorded["logical_cpus"]) == (2, 2), context
    # Findings made before sys.exit are still reported, on stderr and in the JSON.
    assert "missing-apply" in run.codes(), context
    assert "missing-apply" in run.stderr, context


def test_cli_uncaught_exception_exits_1_with_findings(runs: Runs) -> None:
    run = runs.get("cli_uncaught_exception")
    context = run.describe()
    assert run.returncode == 1, context
    assert "Traceback" in run.stderr and "boom: the data loader ran dry" in run.stderr, context
    assert "missing-apply" in run.codes(), context
    assert "missing-apply" in run.stderr, context


def test_cli_script_that_never_trains(runs: Runs) -> None:
    run = runs.get("cli_never_trains")
    context = run.describe()
    assert run.returncode == 0, context
    assert "(4, 2)" in run.stdout, context
    assert "no gradient computation" in run.stderr, context
    assert "nothing to diagnose" in run.stderr, context
    assert run.findings == [], context


def test_cli_missing_script(runs: Runs) -> None:
    run = runs.get("cli_missing_script")
    assert run.returncode == 2, run.describe()
    assert "no such script" in run.stderr and "no_such_train.py" in run.stderr, run.describe()
    assert "Traceback" not in run.stderr, run.describe()


def test_cli_not_a_python_script(runs: Runs) -> None:
    run = runs.get("cli_not_python")
    assert run.returncode == 2, run.describe()
    assert "train.sh" in run.stderr and "not a Python script" in run.stderr, run.describe()
    assert "Traceback" not in run.stderr, run.describe()


def test_cli_notebook_is_not_a_python_script(runs: Runs) -> None:
    run = runs.get("cli_notebook")
    assert run.returncode == 2, run.describe()
    assert "train.ipynb" in run.stderr and "not a Python script" in run.stderr, run.describe()
    assert "nbconvert" in run.stderr, run.describe()
    assert "Traceback" not in run.stderr, run.describe()


def test_cli_every_zero_is_a_usage_error(runs: Runs) -> None:
    run = runs.get("cli_every_zero")
    assert run.returncode == 2, run.describe()
    assert "usage:" in run.stderr and "--every" in run.stderr, run.describe()
    assert not run.json_path.exists(), run.describe()


def test_cli_dead_units_in_the_json_report(runs: Runs) -> None:
    run = runs.get(table_key(DEAD_RELU))
    context = run.describe()
    (dead,) = [f for f in run.findings if f["code"] == "dead-units"]
    assert dead["severity"] == "warning" and isinstance(dead["step"], int), context
    assert dead["variables"] == ["dense_1/kernel", "dense_1/bias"], context
    details = dead["details"]
    assert details["layer"] == "dense_1" and details["units"] == 64, context
    assert 0.6 <= details["dead_fraction"] <= 1.0, context
    assert "dense_1" in dead["message"] and "LeakyReLU" in dead["message"], context
    assert run.report["steps_observed"] == 192, context  # 3 epochs of 64 batches


def test_cli_activations_are_off_with_no_activations(runs: Runs) -> None:
    plain = runs.get("cli_dead_relu_without_activations")
    watched = runs.get(table_key(DEAD_RELU))
    assert plain.returncode == 0, plain.describe()
    assert "dead-units" not in plain.codes(), plain.describe()
    assert "dead-units" in watched.codes(), watched.describe()
    # Watching changes nothing the script computes: the same losses, printed the same.
    assert plain.stdout == watched.stdout and "epoch 2: loss" in plain.stdout, watched.describe()
