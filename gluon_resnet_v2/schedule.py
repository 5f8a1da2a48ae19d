"""The paper's learning-rate schedule, counted in iterations, on MXNet's own scheduler.

Appendix: 0.01 for the first 400 iterations ("warm-up"), then 0.1, divided by 10 at 32k
and 48k iterations. The scheduler goes into the optimizer (Gluon Trainer or Module alike)
so both APIs follow the same rule.

MXNet calls the scheduler with `num_update`, the 1-based count of the update being made:
iteration i (0-based) is num_update i + 1. MultiFactorScheduler decays once
num_update > step, i.e. from iteration `step` on, as the paper counts; its constant warm-up
covers num_update < warmup_steps, so warmup_steps = warmup_iters + 1 gives exactly
iterations 0 .. warmup_iters - 1 at the warm-up rate. The linear warm-up (not the paper's;
Goyal et al. 2017's gradual one, for short schedules where the jump from 0.01 to 0.1 costs
a large share of the run) gives iteration i < warmup_iters
warmup_lr + (lr - warmup_lr) (i + 1) / (warmup_iters + 1), lr from iteration warmup_iters.
"""
import mxnet as mx


def lr_scheduler(optim):
    """An `mx.lr_scheduler` for an `OptimConfig`: warm-up, then step decay."""
    warmup = dict(base_lr=optim.lr, warmup_mode=optim.warmup_mode,
                  warmup_begin_lr=optim.warmup_lr if optim.warmup_iters else optim.lr,
                  warmup_steps=optim.warmup_iters + 1 if optim.warmup_iters else 0)
    if not optim.lr_steps:
        # no decay: a FactorScheduler whose factor 1 never changes the rate
        return mx.lr_scheduler.FactorScheduler(step=1, factor=1.0, **warmup)
    return mx.lr_scheduler.MultiFactorScheduler(step=list(optim.lr_steps), factor=optim.lr_factor,
                                                **warmup)


def lr_at(optim, iteration):
    """The learning rate the schedule gives iteration `iteration` (0-based), for logs."""
    return lr_scheduler(optim)(iteration + 1)


def optimizer_params(optim, steps_done=0):
    """Keyword arguments of `mx.optimizer.create` (Trainer and Module share them).

    `steps_done` starts the update count where a resumed run left off."""
    params = dict(learning_rate=optim.lr, wd=optim.wd, momentum=optim.momentum,
                  lr_scheduler=lr_scheduler(optim), begin_num_update=steps_done)
    if optim.dtype == 'float16':
        params['multi_precision'] = True     # float32 master weights for float16 training
    return params


def module_optimizer(optim):
    """The optimizer object for `mx.mod.Module.init_optimizer`.

    Passed as an object, not by name: by name Module exempts from weight decay every
    parameter not ending in `_weight`/`_gamma` (biases, BN betas), while the Gluon Trainer
    and the paper's code decay them all. SoftmaxOutput's gradient is per image, so the
    update is scaled by the batch."""
    return mx.optimizer.create(optim.optimizer, rescale_grad=1.0 / optim.batch_size,
                               **optimizer_params(optim))
