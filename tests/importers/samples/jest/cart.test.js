const { total, tax } = require('./cart');
describe('cart', () => {
  test('totals the items', () => { expect(total([{ price: 2, qty: 3 }])).toBe(6); });
  test('applies tax', () => { expect(tax(35)).toBe(8); });
  test.skip('discounts coupons', () => {});
});
describe('checkout', () => {
  test('empty cart totals zero', () => { expect(total([])).toBe(0); });
});
