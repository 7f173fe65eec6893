function total(items) { return items.reduce((s, i) => s + i.price * i.qty, 0); }
function tax(amount) { return Math.round(amount * 0.2); }
module.exports = { total, tax };
