"""A fresh linear probe: how well a property can be read linearly from features it never saw.

Multinomial logistic regression on standardised features, fitted to
convergence by L-BFGS from zero weights (so the result is deterministic),
with a small L2 penalty so that separable data still has a finite optimum.
"""
import torch
import torch.nn.functional as F


def linear_probe_accuracy(fit_x, fit_y, test_x, test_y, num_classes, l2=1e-3, iterations=100):
    """Accuracy on (test_x, test_y) of a linear classifier fitted on (fit_x, fit_y)."""
    fit_x, test_x = fit_x.detach().float(), test_x.detach().float()
    mean = fit_x.mean(dim=0)
    std = fit_x.std(dim=0, unbiased=False).clamp(min=1e-6)
    fit_x = (fit_x - mean) / std
    test_x = (test_x - mean) / std
    weight = torch.zeros(fit_x.shape[1], num_classes, requires_grad=True)
    bias = torch.zeros(num_classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=iterations, line_search_fn="strong_wolfe")

    def objective():
        optimizer.zero_grad()
        loss = F.cross_entropy(fit_x @ weight + bias, fit_y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(objective)
    with torch.no_grad():
        predicted = (test_x @ weight + bias).argmax(dim=1)
    return float((predicted == test_y).float().mean())
